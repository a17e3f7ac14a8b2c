"""The stdin loop's helpers that stand in for `re` and `pathlib`."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from chiron.harness.server import is_safe_id, workspace_from_env


@pytest.mark.parametrize(
    "value",
    [
        "att_1",
        "A",
        "0.x-y_z",
        "a" * 128,
        "a" * 129,
        "",
        ".",
        "-a",
        "_a",
        "../x",
        "a/b",
        "a b",
        "ä",
        "a\n",
        "\u0661",  # ARABIC-INDIC DIGIT ONE: a digit, but not [0-9]
        "a" * 127 + "\n",
    ],
)
def test_safe_ids_are_what_the_old_pattern_accepted(value: str) -> None:
    expected = re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", value) is not None
    assert is_safe_id(value) is expected


@pytest.mark.parametrize(
    "value",
    [
        "/workspace",
        "/workspace/",
        "//workspace",
        "///workspace",
        "/a/./b//c/",
        "/a/../b",
        "/",
        "//",
        "/.",
        "/x/.",
    ],
)
def test_the_workspace_is_spelled_as_pathlib_spells_it(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHIRON_WORKSPACE", value)
    assert workspace_from_env() == str(Path(value))


def test_a_relative_or_missing_workspace_is_taken_from_the_current_directory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHIRON_WORKSPACE", "sub/./dir/")
    assert workspace_from_env() == str(Path.cwd() / "sub" / "dir")
    monkeypatch.delenv("CHIRON_WORKSPACE")
    assert workspace_from_env() == os.getcwd()
