"""The session runtime: drives executions, pumps sandbox stdout into the event log, detects the
end of a turn, holds output leases and recovers after a restart.

Owns: execution state changes after `queued`, sandbox allocation for sessions, background loops.
Must not import the HTTP layer; the API calls `SessionService`.
"""
