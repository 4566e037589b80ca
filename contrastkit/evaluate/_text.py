"""Text from the user's files (class-folder names, paths, CSV headers) as a terminal, JSON and matplotlib take it.

On POSIX a file name may hold bytes that are not UTF-8 (``os.makedirs(b"\\xff\\xfe")``); Python keeps each such
byte as a lone surrogate (U+DC80..U+DCFF, PEP 383), which matplotlib's font code refuses and a strict UTF-8 stream
cannot write. :func:`readable` shows each such byte as a ``\\xff`` escape instead: printable, and still telling
two names apart (a replacement character would not). Control characters (a newline in a folder name) become
escapes too, so that a name stays on one line.
"""

from __future__ import annotations

__all__ = ["readable"]

_CONTROL_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(32), 127)}


def readable(text: object) -> str:
    """``str(text)`` on one line, with undecodable file-name bytes, other lone surrogates and control characters
    as backslash escapes (``\\xff``, ``\\ud800``, ``\\x0a``); any other character, ASCII or not, as it is."""
    text = str(text)
    try:
        raw = text.encode("utf-8", "surrogateescape")  # the file name's own bytes
    except UnicodeEncodeError:  # a surrogate that is no escaped byte (e.g. "\ud800")
        shown = text.encode("utf-8", "backslashreplace").decode("utf-8")
    else:
        shown = raw.decode("utf-8", "backslashreplace")
    return shown.translate(_CONTROL_ESCAPES)
