"""Decode Codat's JSON bodies without changing a digit or refusing a valid string.

Codat's amounts are decimals of up to 28 significant digits; a binary float keeps about 16, so
``98765432109876.54`` would come back as ``...76.55``. Every number with a fraction or an exponent is decoded as a
:class:`~decimal.Decimal` (integers are already exact), and the writer encodes it back digit for digit.

JSON allows any ``\\uXXXX`` escape, including a lone UTF-16 surrogate such as ``"\\ud83d"`` (a truncated emoji
from a source platform). msgspec, the fast decoder, refuses those bodies; the standard library takes them, so a
body msgspec refuses is decoded again by the standard library, with the same exact numbers.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import msgspec

_DECODER = msgspec.json.Decoder(float_hook=Decimal)


def loads_exact(content: bytes) -> Any:
    """Decode a JSON body, numbers with fractions as :class:`~decimal.Decimal`.

    :param content: the body's bytes.
    :raises ValueError: when the body is not JSON.
    """
    try:
        return _DECODER.decode(content)
    except msgspec.DecodeError:
        # Valid JSON msgspec refuses (lone surrogate escapes), or not JSON at all: the standard library decides.
        return json.loads(content, parse_float=Decimal)
