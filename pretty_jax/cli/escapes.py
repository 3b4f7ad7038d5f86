"""The escapes a flag value may hold, so that one flagfile line can hold a newline."""

from __future__ import annotations

import re

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\"}


def unescape(text: str) -> str:
    """Reads \\n, \\t, \\r and \\\\ in a flag value as the characters they name."""
    return re.sub(r"\\([ntr\\])", lambda m: _ESCAPES[m.group(1)], text)
