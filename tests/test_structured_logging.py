"""Logs are one JSON object per line off a terminal, and never carry a token."""

from __future__ import annotations

import io
import json
import logging

from chiron.structured_logging import JsonFormatter


def test_json_lines_with_extra_fields_and_redaction() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("chiron.test.logging")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning(
            "calling with Bearer abcdefghijk123 and sk-abcdefghijklmnopqrstu",
            extra={"execution_id": "exe_1", "token": "ghp_abcdefghijklmnopqrstuvwxyz12"},
        )
    finally:
        logger.removeHandler(handler)
    (line,) = stream.getvalue().splitlines()
    entry = json.loads(line)
    assert entry["level"] == "warning" and entry["execution_id"] == "exe_1"
    for secret in (
        "abcdefghijk123",
        "sk-abcdefghijklmnopqrstu",
        "ghp_abcdefghijklmnopqrstuvwxyz12",
    ):
        assert secret not in line
