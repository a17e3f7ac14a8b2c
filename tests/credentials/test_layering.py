"""`chiron.credentials` stays below the API, the CLI and the runtime (its docstring's promise)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "chiron" / "credentials"
FORBIDDEN = {"api", "cli", "runtime", "sandbox", "harness"}


def test_credentials_import_nothing_above_them() -> None:
    offenders = []
    for path in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                parts = name.split(".")
                if parts[0] == "chiron" and len(parts) > 1 and parts[1] in FORBIDDEN:
                    offenders.append(f"{path.name} imports {name}")
    assert offenders == []
