"""Display width of text in a terminal: East Asian wide and fullwidth characters take two
columns (``重要价值（冠军）`` is 16 columns wide, 8 characters), so columns of a table line up
only when text is padded by display width, not by ``len``.  Used by the CLI and by the
summary lines the tasks print."""
from __future__ import annotations

import unicodedata


def display_width(text) -> int:
    """Terminal columns ``text`` takes (combining marks none, wide/fullwidth two)."""
    return sum(
        0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1
        for ch in str(text)
    )


def ljust(text, width: int) -> str:
    """``text`` padded on the right with spaces to ``width`` display columns."""
    s = str(text)
    return s + " " * max(0, width - display_width(s))


def rjust(text, width: int) -> str:
    """``text`` padded on the left with spaces to ``width`` display columns."""
    s = str(text)
    return " " * max(0, width - display_width(s)) + s
