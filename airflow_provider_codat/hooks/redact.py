"""Scrub the API key out of text that comes back from the server, before the provider keeps it anywhere.

A gateway, a WAF or a debug proxy in front of Codat may answer an error whose body repeats the request's
``Authorization`` header: as JSON, as an HTML page, percent-encoded, folded over lines, with ``basic`` in lower
case, with or without the base64 padding. Whatever the provider builds from such text (an exception's message
and fields, a sync outcome in XCom, a trigger event, a log line) must not carry the key. So every answer the hook
turns into an error or hands to a caller as status data goes through a :class:`Redactor` first.

Two layers:

* the hook's own key, matched in every spelling above (:meth:`Redactor.text`): the bare key and its base64
  (standard or URL-safe alphabet, padded or not), each character possibly percent-encoded or written as an HTML
  or JSON escape, with whitespace, escaped line breaks or short HTML tags between any two characters;
* any credential-shaped value, whoever's it is (:func:`scrub`): ``Basic``/``Bearer`` followed by a token, and the
  value after an ``Authorization:`` label. This layer needs no key, so it also runs where none is known.

Logs are also covered by Airflow's secrets masker: :func:`literal_forms` lists the exact spellings to hand to
``mask_secret``.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any
from urllib.parse import quote

REDACTED = "***"

# Between two characters of an echoed secret: whitespace, escaped or encoded line breaks and spaces, short tags.
_GAP = r"(?:\s|\\[rnt]|%0[ad]|%09|%20|&#0*(?:9|10|13|32);|&#x0*(?:9|a|d|20);|&nbsp;|<[^<>\r\n]{0,20}>)*"
# HTML's named entities for the characters a key or its base64 may hold.
_NAMED = {"+": ("&plus;",), "/": ("&sol;",), "=": ("&equals;",), "&": ("&amp;",), "-": ("&hyphen;", "&dash;")}
# base64's two alphabets differ in two characters: a URL-safe echo of the header is the same secret.
_URLSAFE = {"+": "-", "/": "_"}

# A credential after its scheme: long enough not to be a word ("Basic authentication" stays as it is).
_SCHEME_TOKEN = re.compile(
    r"(?i)\b(basic|bearer)((?:\s|%20|\+|&nbsp;)+)([A-Za-z0-9+/_\-.~%]{16,}(?:=|%3d){0,2})"
)
# The value after an ``Authorization`` label (JSON, a header dump, a query string).
_AUTH_LABEL = re.compile(
    r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)(?!\*\*\*)((?:basic|bearer)?(?:\s|%20|\+)*[^\s\"'<>,;&]+)"
)


def _encodings(char: str) -> list[str]:
    """Regex alternatives for one character as an echo may spell it."""
    code = ord(char)
    spellings = [re.escape(char), f"%{code:02x}", f"&#0*{code};", f"&#x0*{code:x};", rf"\\u{code:04x}"]
    spellings += [re.escape(named) for named in _NAMED.get(char, ())]
    if char in _URLSAFE:
        spellings.append(re.escape(_URLSAFE[char]))
    return spellings


def _tolerant(secret: str) -> str:
    """A pattern matching ``secret`` however an echo spells it (see the module's docstring)."""
    return _GAP.join("(?:" + "|".join(_encodings(char)) + ")" for char in secret)


def _base64_forms(api_key: str) -> tuple[str, str]:
    encoded = base64.b64encode(api_key.encode()).decode()
    return encoded, encoded.rstrip("=")


def literal_forms(api_key: str) -> list[str]:
    """The exact spellings of the key to hand to Airflow's ``mask_secret`` (it masks literal text only).

    :param api_key: the bare Codat API key.
    """
    if not api_key:
        return []
    padded, bare = _base64_forms(api_key)
    urlsafe = base64.urlsafe_b64encode(api_key.encode()).decode()
    forms = [api_key, padded, bare, urlsafe, urlsafe.rstrip("="), f"Basic {padded}", f"Basic {bare}"]
    forms += [quote(form, safe="") for form in list(forms)]
    return list(dict.fromkeys(forms))


def scrub(text: str) -> str:
    """Replace credential-shaped values (``Basic …``, ``Bearer …``, ``Authorization: …``), whoever's they are.

    :param text: any text that came from outside.
    """
    text = _SCHEME_TOKEN.sub(_scheme_replacement, text)
    return _AUTH_LABEL.sub(lambda m: m.group(1) + REDACTED, text)


def _scheme_replacement(match: re.Match) -> str:
    token = match.group(3)
    # A token of letters only in one case is a word, not a credential.
    looks_random = any(c.isdigit() or c in "+/=%_" for c in token) or (
        any(c.isupper() for c in token[1:]) and any(c.islower() for c in token)
    )
    return f"{match.group(1)}{match.group(2)}{REDACTED}" if looks_random else match.group(0)


class Redactor:
    """Scrubs one API key (every spelling) and any credential-shaped value from text and decoded JSON.

    :param api_key: the bare key; ``None`` or empty scrubs credential shapes only.
    """

    def __init__(self, api_key: str | None) -> None:
        self._pattern: re.Pattern | None = None
        if api_key:
            padded, bare = _base64_forms(api_key)
            padding = "(?:" + _GAP + "(?:" + "|".join(_encodings("=")) + ")){0,2}"
            # The base64 first: the key's own pattern must not eat the middle of a longer match.
            self._pattern = re.compile(f"{_tolerant(bare)}{padding}|{_tolerant(api_key)}", re.IGNORECASE)

    def text(self, value: str) -> str:
        """``value`` with the key and credential shapes replaced by ``***``."""
        if self._pattern is not None:
            value = self._pattern.sub(REDACTED, value)
        return scrub(value)

    def json(self, value: Any) -> Any:
        """A copy of decoded JSON with every string (keys too) scrubbed; other values unchanged."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.json(k): self.json(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.json(item) for item in value]
        return value

    def __repr__(self) -> str:
        return f"{type(self).__name__}(key={'set' if self._pattern is not None else 'none'})"


@lru_cache(maxsize=8)
def redactor_for(authorization: str | None) -> Redactor:
    """The :class:`Redactor` for an ``Authorization`` value (``Basic`` + base64 of the key), built once.

    :param authorization: the header value the hook sends; ``None`` when the connection is not read yet.
    """
    if not authorization:
        return Redactor(None)
    encoded = authorization.split(" ", 1)[-1]
    try:
        api_key = base64.b64decode(encoded, validate=True).decode()
    except ValueError:
        api_key = None
    return Redactor(api_key)


Scrubber = Callable[[str], str]
