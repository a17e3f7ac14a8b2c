"""Redaction of many lines at once gives exactly what redacting each line gives."""

from __future__ import annotations

import pytest

from chiron.redaction import REDACTED, Redactor

CLEAN = [
    f'{{"method":"item/commandExecution/outputDelta","params":{{"delta":"{i}"}}}}'
    for i in range(50)
]


@pytest.mark.parametrize(
    "dirty",
    [
        "token sk-ant-0123456789abcdefghij",
        "Authorization: Bearer abcdef123456789",
        "authorization: bearer abcdef123456789",
        "xoxb-1234567890-abcdefghij in the middle",
        "xapp-1-A0123456789-abcdef",
        "ghp_0123456789abcdefghijABCDEFGHIJ",
        "github_pat_0123456789abcdefghij_ABCDEFGHIJ",
        "key=AKIAABCDEFGHIJKLMNOP;",
        "ASIAABCDEFGHIJKLMNOP",
        "glpat-0123456789abcdefghij",
        "the registered value s3cr3t-value-42 leaked",
        "",
    ],
)
def test_a_batch_is_redacted_like_its_lines(dirty: str) -> None:
    redactor = Redactor()
    redactor.set_known_values(["s3cr3t-value-42"])
    lines = [*CLEAN[:20], dirty, *CLEAN[20:]]
    assert redactor.redact_lines(lines) == [redactor.redact(line) for line in lines]
    if dirty:
        assert REDACTED in redactor.redact_lines(lines)[20]
    assert redactor.redact_lines(CLEAN) == CLEAN


def test_a_token_split_across_two_lines_is_not_joined_into_one() -> None:
    # "Bearer" ends one line and the credential-like text starts the next: per line, neither
    # is a credential, and the batch must not see one across the line break either.
    lines = ["Authorization: Bearer", "abcdefghijklmnop"]
    assert Redactor().redact_lines(lines) == lines
