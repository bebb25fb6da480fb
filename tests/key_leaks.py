"""Find an API key in text however it is spelled, and collect every text an exception carries."""

from __future__ import annotations

import base64
import html
import json
import re
from typing import Any
from urllib.parse import unquote

RUN = 12  # a run this long of the key or its base64 counts as a leak


def leaks(text: str, key: str) -> list[str]:
    """Every ``RUN``-character piece of ``key`` or of its base64 (either alphabet) found in ``text`` once decoded
    (HTML entities, percent and JSON escapes, tags, line breaks), in any case."""
    decoded = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m[1], 16)), html.unescape(unquote(text)))
    decoded = re.sub(r"<[^>]*>|\\[rnt]", "", decoded)
    folded = "".join(decoded.split()).lower()
    found = []
    for secret in (
        key,
        base64.b64encode(key.encode()).decode().rstrip("="),
        base64.urlsafe_b64encode(key.encode()).decode().rstrip("="),
    ):
        low = secret.lower()
        found += [low[i : i + RUN] for i in range(len(low) - RUN + 1) if low[i : i + RUN] in folded]
    return found


def exception_texts(exc: BaseException) -> list[str]:
    """str, repr, args and attributes of ``exc`` and of every exception it chains (cause and context)."""
    texts, pending, seen = [], [exc], set()
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        texts += [str(current), repr(current), repr(current.args)]
        texts += [f"{name}={value!r}" for name, value in vars(current).items() if not name.startswith("__")]
        pending += [current.__cause__, current.__context__]
    return texts


def assert_no_leak(key: str, *values: Any) -> None:
    """Fail naming the first value that carries the key (strings as they are, anything else as JSON or repr)."""
    for value in values:
        if isinstance(value, BaseException):
            texts = exception_texts(value)
        elif isinstance(value, str):
            texts = [value]
        else:
            try:
                texts = [json.dumps(value)]
            except (TypeError, ValueError):
                texts = [repr(value)]
        for text in texts:
            found = leaks(text, key)
            assert not found, f"the key leaks ({found[:2]}) in: {text[:300]}"
