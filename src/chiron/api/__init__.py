"""The HTTP API (FastAPI): routes, auth, body limits and the mapping of errors to one shape.

Owns: request/response models and HTTP semantics. Must not talk to the store or sandboxes
directly: routes call `chiron.runtime.session_service.SessionService`.
"""
