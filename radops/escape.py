"""Text from the lake on a terminal: escaped, so that it can only ever be read.

Keys, metadata values and the fields of lineage events (job names, e-mails, parameters) come
from the lake, which anyone who can write to its bucket or directory fills as they like. A
terminal acts on some characters (ESC starts sequences that set the window title, clear the
screen or move the cursor; BEL rings), and others hide or reorder what is shown (bidi
overrides, zero-width characters, line separators). Every such string passes through one of
these two functions before radops prints it:

- :func:`escape` for text inside a message: each character that is not printable becomes
  its JSON escape (``\\u001b``), the rest is left as it is;
- :func:`shown` for an item on a line of its own or in a column (a key in a listing): as it
  is when that is unambiguous, otherwise a JSON string literal, quotes included.

"Printable" is Python's :meth:`str.isprintable`: letters, marks, digits, punctuation, symbols
and the ASCII space; not control (Cc), format (Cf), surrogate, private-use or unassigned
characters, nor line, paragraph or other separators than the space.
"""

from __future__ import annotations

__all__ = ["escape", "shown"]

_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def _escaped(char: str) -> str:
    short = _SHORT.get(char)
    if short is not None:
        return short
    code = ord(char)
    if code > 0xFFFF:  # beyond the BMP: a surrogate pair, as JSON writes it
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


def escape(text: str) -> str:
    """``text`` with every character that is not printable written as its JSON escape.

    ``"a\\x1b[2Jb"`` becomes ``a\\u001b[2Jb``: one line, nothing a terminal acts on.
    """
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else _escaped(char) for char in text)


def shown(text: str) -> str:
    """``text`` as one unambiguous item: as it is, or quoted as a JSON string.

    It stays as it is when every character is printable, it holds no backslash, and it
    neither starts with a quote nor starts or ends with a space; otherwise it is a JSON string
    literal (``"pfx/a\\u001b]0;x\\u0007"``), so that nothing in it acts on the terminal and
    a quoted name can never be mistaken for a plain one.
    """
    if (
        text.isprintable()
        and "\\" not in text
        and text[:1] not in ('"', " ", "")
        and text[-1:] != " "
    ):
        return text
    body = []
    for char in text:
        if char == "\\":
            body.append("\\\\")
        elif char == '"':
            body.append('\\"')
        elif char.isprintable():
            body.append(char)
        else:
            body.append(_escaped(char))
    return '"' + "".join(body) + '"'
