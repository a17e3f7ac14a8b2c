"""The tools offered to the model: names, descriptions, JSON Schemas, argument checking.

The schemas are plain JSON Schema objects, which both APIs take as they are (OpenAI as a
function's `parameters`, Anthropic as a tool's `input_schema`). `parse_arguments` checks what the
model sent against them, so a malformed call becomes a readable tool error instead of a crash.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

MAX_COMMAND_TIMEOUT_S = 3600


class MalformedToolCall(Exception):
    """The model's tool call cannot be run as sent; the message tells the model why."""


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(self.parameters.get("required", ()))


def _object(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


_TIMEOUT = {
    "type": "integer",
    "minimum": 1,
    "maximum": MAX_COMMAND_TIMEOUT_S,
    "description": "Seconds before the command is killed (default 600).",
}

TOOL_SPECS: tuple[ToolSpec, ...] = (
    ToolSpec(
        "shell",
        "Run a bash command in the workspace (the working directory). stdout and stderr are "
        "merged; the result gives the exit code and the output (long output is cut in the "
        "middle). stdin is empty. Use it to inspect, build, test and run things.",
        _object(
            {
                "command": {"type": "string", "description": "The bash command line to run."},
                "timeout_s": _TIMEOUT,
            },
            ["command"],
        ),
    ),
    ToolSpec(
        "read_file",
        "Read a text file. Relative paths are taken from the workspace. Long files are cut; "
        "use offset and limit (in lines) to read a part.",
        _object(
            {
                "path": {"type": "string", "description": "File path."},
                "offset": {
                    "type": "integer",
                    "minimum": 1,
                    "description": "First line to read, counting from 1.",
                },
                "limit": {"type": "integer", "minimum": 1, "description": "Lines to read."},
            },
            ["path"],
        ),
    ),
    ToolSpec(
        "write_file",
        "Create or overwrite a file inside the workspace with the given content (parent "
        "directories are created). Paths outside the workspace are refused.",
        _object(
            {
                "path": {"type": "string", "description": "File path inside the workspace."},
                "content": {"type": "string", "description": "The whole new content."},
            },
            ["path", "content"],
        ),
    ),
    ToolSpec(
        "list_files",
        "List a directory (default: the workspace). Directories end with '/'. With recursive, "
        "list the whole tree (skipping .git, node_modules and the like).",
        _object(
            {
                "path": {"type": "string", "description": "Directory path (default '.')."},
                "recursive": {"type": "boolean", "description": "List the whole tree."},
            },
            [],
        ),
    ),
    ToolSpec(
        "list_tools",
        "List the tool CLIs installed for this agent (beyond the usual system commands), "
        "which run_tool can run.",
        _object({}, []),
    ),
    ToolSpec(
        "run_tool",
        "Run one of the tool CLIs that list_tools shows, with arguments (no shell involved).",
        _object(
            {
                "tool": {"type": "string", "description": "The tool's command name."},
                "args": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Command-line arguments.",
                },
                "timeout_s": _TIMEOUT,
            },
            ["tool"],
        ),
    ),
)
SPECS_BY_NAME = {spec.name: spec for spec in TOOL_SPECS}

_JSON_TYPES: dict[str, type] = {"string": str, "boolean": bool, "array": list, "object": dict}


def parse_arguments(name: str, raw: str) -> dict[str, Any]:
    """The arguments of a call to tool `name`, checked; `MalformedToolCall` says what is wrong."""
    spec = SPECS_BY_NAME.get(name)
    if spec is None:
        known = ", ".join(SPECS_BY_NAME)
        raise MalformedToolCall(f"unknown tool {name!r}; the tools are: {known}")
    try:
        arguments = json.loads(raw) if raw.strip() else {}
    except ValueError as exc:
        raise MalformedToolCall(
            f"the arguments of {name} are not valid JSON ({exc}); send a JSON object"
        ) from None
    if not isinstance(arguments, dict):
        raise MalformedToolCall(
            f"the arguments of {name} must be a JSON object, got {type(arguments).__name__}"
        )
    for field in spec.required:
        if field not in arguments:
            raise MalformedToolCall(f"{name} needs the field {field!r}")
    properties: dict[str, Any] = spec.parameters["properties"]
    for field, value in arguments.items():
        schema = properties.get(field)
        if schema is None:
            raise MalformedToolCall(
                f"{name} has no field {field!r}; its fields are: {', '.join(properties) or 'none'}"
            )
        arguments[field] = _check(name, field, value, schema)
    return arguments


def _check(tool: str, field: str, value: Any, schema: dict[str, Any]) -> Any:
    """`value` if it fits `schema` (an integral float counts as an integer), else raises."""
    kind = schema["type"]
    if kind == "integer":
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        low, high = schema.get("minimum"), schema.get("maximum")
        if (
            isinstance(value, int)
            and not isinstance(value, bool)
            and (low is None or value >= low)
            and (high is None or value <= high)
        ):
            return value
        limits = f" from {low} to {high}" if high is not None else f" of at least {low}"
        raise MalformedToolCall(
            f"{tool}: {field!r} must be an integer{limits if low is not None else ''}, "
            f"got {value!r}"
        )
    if kind == "array":
        item_kind = schema["items"]["type"]
        if isinstance(value, list) and all(isinstance(v, _JSON_TYPES[item_kind]) for v in value):
            return value
        raise MalformedToolCall(
            f"{tool}: {field!r} must be an array of {item_kind}s, got {value!r}"
        )
    if isinstance(value, _JSON_TYPES[kind]):
        return value
    raise MalformedToolCall(f"{tool}: {field!r} must be a {kind}, got {value!r}")
