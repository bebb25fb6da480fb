"""Codat's error body and the exception the simulator raises to produce one."""

from __future__ import annotations

import hashlib
import itertools

_counter = itertools.count(1)


class SimulatorError(Exception):
    """An error answer, raised anywhere in the simulator and turned into Codat's error body.

    :param status: the HTTP status.
    :param message: the ``error`` text.
    :param service: the ``service`` Codat names in the body.
    """

    def __init__(self, status: int, message: str, service: str = "PublicApi") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.service = service


def error_body(
    status: int, message: str, service: str = "PublicApi", can_be_retried: str = "Unknown"
) -> dict:
    """Codat's error body: ``canBeRetried`` is a string and ``validation`` is null unless there is some.

    :param status: the HTTP status.
    :param message: the ``error`` text.
    :param service: the ``service`` Codat names.
    :param can_be_retried: the ``canBeRetried`` string.
    """
    correlation = hashlib.md5(f"{next(_counter)}|{message}".encode(), usedforsecurity=False).hexdigest()
    return {
        "statusCode": status,
        "service": service,
        "error": message,
        "correlationId": correlation,
        "validation": None,
        "canBeRetried": can_be_retried,
        "detailedErrorCode": 0,
    }
