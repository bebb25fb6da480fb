"""JSON bodies as Codat writes them: decimals with every digit, any string (lone surrogates as escapes)."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

# The standard encoder cannot write a Decimal as a bare number: it writes a marked string, unwrapped after.
_MARK = "\x00decimal:"
_MARKED = re.compile(r'"\\u0000decimal:([^"]+)"')


def _mark(value: Any) -> str:
    if isinstance(value, Decimal):
        return _MARK + str(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def dumps(body: Any) -> str:
    """Encode ``body`` compactly; :class:`~decimal.Decimal` values become numbers with every digit.

    :param body: what to encode.
    """
    text = json.dumps(body, separators=(",", ":"), default=_mark)
    return _MARKED.sub(r"\1", text) if "\\u0000decimal:" in text else text
