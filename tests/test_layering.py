"""Which parts may import which (STYLE.md habit 1), checked on the source itself."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "chiron"

# part -> chiron parts it must never import
FORBIDDEN = {
    "store": {"runtime", "api", "sandbox", "cli", "harness"},
    "sandbox": {"store", "runtime", "api", "cli"},
    "runtime": {"api", "cli"},
    "harness": {"store", "runtime", "api", "cli", "sandbox", "settings", "redaction"},
    # Pure functions over event dicts, shared by every front door.
    "render": {"store", "runtime", "api", "cli", "sandbox", "harness"},
}
STDLIB_ONLY = [SRC / "sandbox" / "supervisor.py", *sorted((SRC / "harness").glob("*.py"))]


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("part", sorted(FORBIDDEN))
def test_parts_do_not_import_upwards(part: str) -> None:
    offenders = []
    for path in sorted((SRC / part).rglob("*.py")):
        for name in _imports(path):
            pieces = name.split(".")
            if pieces[0] == "chiron" and len(pieces) > 1 and pieces[1] in FORBIDDEN[part]:
                offenders.append(f"{path.relative_to(SRC)} imports {name}")
    assert offenders == []


@pytest.mark.parametrize("path", STDLIB_ONLY, ids=lambda p: str(p.relative_to(SRC)))
def test_code_running_inside_or_beside_sandboxes_is_stdlib_only(path: Path) -> None:
    allowed_prefixes = ("chiron.harness",) if "harness" in path.parts else ()
    outside = sorted(
        name
        for name in _imports(path)
        if name.split(".")[0] not in sys.stdlib_module_names
        and name != "__future__"
        and not name.startswith(allowed_prefixes)
        and name != "chiron"
    )
    assert outside == []


# The `chiron` agent loop runs inside sandboxes too, where the model SDKs are mounted read-only:
# those (and their HTTP client) are all it may use beyond the standard library.
MODEL_SDKS = ("openai", "anthropic", "httpx")


@pytest.mark.parametrize(
    "path", sorted((SRC / "harness" / "agent").glob("*.py")), ids=lambda p: p.name
)
def test_the_agent_loop_uses_only_the_stdlib_and_the_model_sdks(path: Path) -> None:
    outside = sorted(
        name
        for name in _imports(path)
        if name.split(".")[0] not in (*sys.stdlib_module_names, *MODEL_SDKS)
        and not name.startswith("chiron.harness")
    )
    assert outside == []
