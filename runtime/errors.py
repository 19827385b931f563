"""The one exception type every edgeskin layer raises for bad input.

It lives in the runtime (the bottom of the dependency chain) so that the torch side, the
converters and the torch-free runtime all raise, and the CLIs all catch, the same thing.
"""


class EdgeskinError(Exception):
    """A user-facing problem: the message is one line that names the file and the problem."""

    @classmethod
    def about(cls, path: object, problem: str) -> "EdgeskinError":
        return cls(f"{path}: {problem}")
