"""`chiron.egress` stays below the control plane (STYLE.md habit 1)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "chiron" / "egress"
FORBIDDEN = {"api", "cli", "runtime", "store", "sandbox", "harness"}


def test_egress_imports_nothing_above_it() -> None:
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                parts = name.split(".")
                if parts[0] == "chiron" and len(parts) > 1 and parts[1] in FORBIDDEN:
                    offenders.append(f"{path.name} imports {name}")
    assert offenders == []
