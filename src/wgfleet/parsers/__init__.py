"""Pure parsers: tool output (``wg``, ``ip -j``, ``birdc``, ``fping``) in, typed facts out."""

from __future__ import annotations

from wgfleet.errors import WgfleetError


class ParseError(WgfleetError):
    """Tool output did not have the expected shape; names the tool and the offending line."""

    def __init__(self, tool: str, message: str, line: str = "") -> None:
        self.tool = tool
        self.line = line
        shown = f": {line[:120]!r}" if line else ""
        super().__init__(f"unexpected output from {tool}: {message}{shown}")
