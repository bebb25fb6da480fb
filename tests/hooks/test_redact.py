"""hooks/redact.py: the key is scrubbed from server text in every spelling an echo may use."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

import pytest

from airflow_provider_codat.hooks.redact import REDACTED, Redactor, literal_forms, redactor_for, scrub
from airflow_provider_codat.simulator.echo import ECHOES, echoed
from tests import key_leaks

# Its base64 ends in "=": padding matters. Letters of both cases, digits and "-".
KEY = "Codat-Key-9f8E7d6C5b4A3x"
ENCODED = base64.b64encode(KEY.encode()).decode()
HEADER = f"Basic {ENCODED}"


def leaks(text: str) -> list[str]:
    return key_leaks.leaks(text, KEY)


@pytest.mark.parametrize("echo", ECHOES)
def test_every_echo_spelling_is_scrubbed(echo):
    text = f"gateway said: Authorization: {echoed(HEADER, echo)} (blocked)"
    assert leaks(text), "the spelling must carry the key, or the test proves nothing"
    assert not leaks(Redactor(KEY).text(text))


@pytest.mark.parametrize(
    "spelling",
    [
        KEY,
        KEY.lower(),
        ENCODED,
        ENCODED.rstrip("="),
        ENCODED.lower(),
        base64.urlsafe_b64encode(KEY.encode()).decode(),
        quote(HEADER, safe=""),
        quote(ENCODED, safe="").lower(),
        "".join(f"&#x{ord(c):x};" for c in ENCODED),
        "".join(f"\\u{ord(c):04x}" for c in ENCODED),
        ENCODED[:9] + "<wbr>" + ENCODED[9:20] + "</span><span>" + ENCODED[20:],
        ENCODED[:16] + "\\r\\n " + ENCODED[16:],
        ENCODED[:16] + "%0D%0A%20" + ENCODED[16:],
    ],
)
def test_key_spellings_inside_a_page(spelling):
    page = f"<html><body><pre>{spelling}</pre><p>next</p></body></html>"
    cleaned = Redactor(KEY).text(page)
    assert not leaks(cleaned)
    assert cleaned.startswith("<html><body><pre>") and cleaned.endswith("</pre><p>next</p></body></html>")


def test_html_page_echo_keeps_the_rest_of_the_text():
    page = (
        f"<tr><td>Authorization</td><td>basic {ENCODED}</td></tr><tr><td>Host</td><td>api.codat.io</td></tr>"
    )
    cleaned = Redactor(KEY).text(page)
    assert (
        cleaned
        == f"<tr><td>Authorization</td><td>basic {REDACTED}</td></tr><tr><td>Host</td><td>api.codat.io</td></tr>"
    )


def test_json_is_scrubbed_everywhere_and_other_values_kept():
    body = {"error": f"echo {HEADER}", "headers": {HEADER: [KEY, 3, None, True]}, "n": 1.5}
    cleaned = Redactor(KEY).json(body)
    assert not leaks(json.dumps(cleaned))
    assert cleaned["n"] == 1.5 and cleaned["headers"][f"Basic {REDACTED}"][1:] == [3, None, True]


@pytest.mark.parametrize(
    "text",
    [
        "Authorization: Basic c29tZW9uZS1lbHNlcy1rZXktMTIz",
        "authorization=Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig",
        '{"Authorization": "x9Yk2mQ7vR4tL8pW3nB6"}',
        "header was bearer AbCdEfGhIjKlMnOpQrSt",
    ],
)
def test_credentials_of_any_key_are_scrubbed_without_knowing_it(text):
    cleaned = scrub(text)
    assert REDACTED in cleaned
    assert not any(token in cleaned for token in ("c29tZW9uZS1l", "eyJhbGci", "x9Yk2mQ7", "AbCdEfGh"))


@pytest.mark.parametrize(
    "text",
    [
        "Basic authentication is required for this resource.",
        "Codat rejected the API key: check the API key in connection `codat_default`.",
        "Cannot queue invoices sync for 3fa85f64-5717-4562-b3fc-2c963f66afa6 as previous sync is still in progress",
    ],
)
def test_ordinary_messages_are_left_alone(text):
    assert Redactor(KEY).text(text) == text


def test_literal_forms_for_the_secrets_masker():
    forms = literal_forms(KEY)
    assert {
        KEY,
        ENCODED,
        ENCODED.rstrip("="),
        HEADER,
        quote(HEADER, safe=""),
        quote(ENCODED, safe=""),
    } <= set(forms)
    assert literal_forms("") == []


def test_redactor_for_an_authorization_value():
    assert not leaks(redactor_for(HEADER).text(f"key {KEY}"))
    # Not read yet: credential shapes only.
    assert redactor_for(None).text(f"Authorization: {HEADER}") == f"Authorization: {REDACTED}"
    assert "set" not in repr(redactor_for(None)) and KEY not in repr(redactor_for(HEADER))


def test_a_key_at_the_end_of_a_large_page_is_scrubbed():
    text = json.dumps(
        [{"id": str(i), "name": f"Company {i}", "note": "lorem ipsum " * 10} for i in range(5000)]
    )
    text += HEADER
    cleaned = Redactor(KEY).text(text)  # about 0.9 MB
    assert not leaks(cleaned) and len(cleaned) > 800_000
