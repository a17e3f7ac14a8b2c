"""The `chiron` command line: the terminal front door (DESIGN.md §11).

Owns: the Typer commands (`up`, `chat`, `sessions`, `events`, `doctor`, `keys`), the async API
client they share, the self-reconnecting SSE follower and the terminal rendering of a turn.
Talks to the server only over its public HTTP API, except `up` (which runs the server) and
`doctor` (which also opens the database directly). Must not touch the store's tables or the
runtime's internals.
"""
