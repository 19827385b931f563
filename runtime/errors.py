"""The one exception type every edgeskin layer raises for bad input.

It lives in the runtime (the bottom of the dependency chain) so that the torch side, the
converters and the torch-free runtime all raise, and the CLIs all catch, the same thing.
"""

import json


class EdgeskinError(Exception):
    """A user-facing problem: the message is one line that names the file and the problem."""

    @classmethod
    def about(cls, path: object, problem: str) -> "EdgeskinError":
        return cls(f"{path}: {problem}")


class EdgeskinTypeError(EdgeskinError, TypeError):
    """A caller of the Python API passed the wrong kind of value: a TypeError, and still one line."""


def one_line(exc: BaseException) -> str:
    """An exception as one short line (its first non-empty line, else its type), for error messages."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0][:300] if lines else type(exc).__name__


def shown(value: object) -> str:
    """A value as a user wrote it (JSON), cut short: error messages stay one line."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
