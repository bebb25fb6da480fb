"""Which types a task reconciles, and the reconcile of one company's types after its extract.

A reconcile (``extract/reconcile.py``) is asked for with ``reconcile=True`` (every type of the task that needs
one: paged, without Codat's deleted flag) or a list of such types. It follows the company's extract in the
same task, for the types that extract landed, and costs a full read of each scope: so weekly, say, not hourly.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_codat.datatypes import CATALOGUE
from airflow_provider_codat.errors import CodatQuotaExhaustedError, CodatValidationError
from airflow_provider_codat.extract.concurrent_types import SharedListings
from airflow_provider_codat.extract.reconcile import reconcile_type
from airflow_provider_codat.landing.layout import reconcilable_types
from airflow_provider_codat.safe_repr import shorten
from airflow_provider_codat.sync.ticket import normalize_data_types

if TYPE_CHECKING:
    from airflow_provider_codat.extract.request import ExtractRequest
    from airflow_provider_codat.hooks.codat import CodatHook

log = logging.getLogger(__name__)

FAILED = "failed"
_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off", ""}


def reconcile_choice(
    reconcile: bool | str | Sequence[str] | None, data_types: Sequence[str], *, strict: bool = False
) -> list[str]:
    """The types of ``data_types`` to reconcile.

    :param reconcile: ``True`` (every type of ``data_types`` that needs it), ``False``/``None`` (none), their
        text, or keys (a list, a comma-separated string, or a rendered list). Keys outside ``data_types`` are left out (a run
        may narrow its types), unless ``strict``.
    :param data_types: the keys the task extracts.
    :param strict: a listed key outside ``data_types`` is an error too (a DAG's table, checked at parse time).
    :raises CodatValidationError: a listed key carries Codat's deleted flag or is a snapshot (it needs no
        reconcile), or (``strict``) is not extracted.
    """
    if isinstance(reconcile, str) and reconcile.strip().lower() in _TRUE | _FALSE:
        reconcile = reconcile.strip().lower() in _TRUE
    if reconcile is None or isinstance(reconcile, bool):
        return reconcilable_types(data_types) if reconcile else []
    chosen = list(dict.fromkeys(normalize_data_types(reconcile, required=False) or ()))
    needless = [key for key in chosen if not reconcilable_types([key])]
    if needless:
        raise CodatValidationError(
            f"reconcile names {', '.join(map(shorten, needless))}, which needs no reconcile: Codat flags its "
            "deletions (metadata.isDeleted), or it is a snapshot. Reconcile only types without the flag: "
            f"{', '.join(reconcilable_types(list(CATALOGUE)))}."
        )
    missing = [key for key in chosen if key not in data_types]
    if strict and missing:
        raise CodatValidationError(
            f"reconcile names {', '.join(map(shorten, missing))}, which is not among the data types extracted "
            f"({', '.join(data_types)}): add it to data_types, or leave it out of reconcile."
        )
    return [key for key in chosen if key in data_types]


def reconcile_company(
    hook: CodatHook, requests: list[ExtractRequest], status: dict[str, dict] | None = None
) -> dict[str, dict[str, Any]]:
    """Reconcile each request's type (one company's), one after the other; a failure stays with its type.

    :param hook: the Codat hook.
    :param requests: the extract requests of the types to reconcile (their run, destination and scope).
    :param status: the company's ``dataStatus`` entries as last seen; read once when ``None``.
    :returns: per data type, the reconcile's summary, or ``{"status": "failed", "error": ...}``.
    :raises CodatQuotaExhaustedError: Codat's daily quota is spent (the task pauses; nothing half committed).
    """
    if not requests:
        return {}
    if status is None:
        status = hook.get_data_status(requests[0].company_id)
    shared = SharedListings(hook)  # one listing of the company's connections for every type
    results: dict[str, dict[str, Any]] = {}
    for request in requests:
        key = request.data_type.key
        try:
            results[key] = reconcile_type(shared, request, status=status.get(key))
        except CodatQuotaExhaustedError:
            raise
        except Exception as exc:  # this type's reconcile fails alone; its extract is committed
            log.error("Reconcile of %s for company %s failed: %s", key, request.company_id, exc)
            results[key] = {"status": FAILED, "error": f"{type(exc).__name__}: {exc}"}
    return results


def reconcile_failure(summary: dict[str, Any] | None) -> str | None:
    """What went wrong in a reconcile's summary (``None``: nothing): it failed, or left scopes unread."""
    summary = summary or {}
    if summary.get("status") == FAILED:
        return str(summary.get("error"))
    unread = summary.get("failed_scopes") or {}
    if unread:
        return "; ".join(
            f"scope {scope or 'company'} not read whole: {error}" for scope, error in unread.items()
        )
    return None
