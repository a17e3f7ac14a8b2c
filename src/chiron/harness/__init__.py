"""The harness: the agent program that runs INSIDE a sandbox (DESIGN.md §7).

Owns: the stdin/stdout NDJSON protocol, the harness server loop and its adapters (`shell`, …).
Runs under the sandbox's Python with only the standard library and `-S`: it must import nothing
from the server side of Chiron (store, api, runtime, sandbox backends, settings) and nothing
outside the standard library.
"""
