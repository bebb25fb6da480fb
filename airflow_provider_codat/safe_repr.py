"""What an error message shows of a value a caller passed: a repr cut to a few dozen characters.

A rendered template or an XCom can hand a task a value of any size (a 10,000-character data type, a whole file
pasted into ``destination``). Messages quote such values only through :func:`shorten`, so a message stays a
line long however long the input was, and building it never walks a huge container. A leaf module (it imports
nothing of the provider) so that every module that validates input can use it.
"""

from __future__ import annotations

import reprlib
from typing import Any

DEFAULT_LIMIT = 80

_REPR = reprlib.Repr()
_REPR.maxlevel = 2
_REPR.maxlist = _REPR.maxtuple = _REPR.maxset = _REPR.maxfrozenset = _REPR.maxdict = 4
_REPR.maxstring = _REPR.maxlong = _REPR.maxother = 40


def shorten(value: Any, limit: int = DEFAULT_LIMIT) -> str:
    """A repr of ``value`` of at most about ``limit`` characters; a cut string says how long it was.

    :param value: what the caller passed.
    :param limit: the most characters of the repr to show.
    """
    if isinstance(value, str):
        if len(value) <= limit:
            return repr(value)
        return f"{value[: max(8, limit - 30)]!r}… ({len(value):,} characters)"
    try:
        text = _REPR.repr(value)
    except Exception:  # a broken __repr__ must not hide the real error
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 1] + "…"
