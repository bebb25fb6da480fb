"""The control API: steer the simulator from a test (Python) or from anywhere (HTTP under ``/_simulator``).

Codat has no ``/_simulator`` path, so these routes cannot collide with the API; they need no API key and
are left out of the request log.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request, Response

from airflow_provider_codat.datatypes import CATALOGUE, Scope, get_data_type
from airflow_provider_codat.simulator.encoding import dumps
from airflow_provider_codat.simulator.error_bodies import SimulatorError, error_body
from airflow_provider_codat.simulator.faults import Fault
from airflow_provider_codat.simulator.limits import LIMIT_NAMES, LimitSettings, busiest_window
from airflow_provider_codat.simulator.webhooks import WEBHOOK_OPERATIONS, WebhookControl, stop_webhooks
from airflow_provider_codat.simulator.world import SimulatorState


class SimulatorControl(WebhookControl):
    """Operations on the running simulator's current state.

    :param get_state: returns the current state.
    :param set_state: replaces it (used by :meth:`reset`).
    """

    def __init__(
        self, get_state: Callable[[], SimulatorState], set_state: Callable[[SimulatorState], None]
    ) -> None:
        self._get_state = get_state
        self._set_state = set_state

    @property
    def state(self) -> SimulatorState:
        return self._get_state()

    def reset(self, **params) -> None:
        """Start afresh with a new :class:`SimulatorState` built from ``params`` (its keyword arguments)."""
        stop_webhooks(self.state)
        self._set_state(SimulatorState(**params))

    # -- companies ---------------------------------------------------------------------------------
    def companies(self) -> list[dict]:
        """Every company: id, name and its connections (id, sourceType, status)."""
        with self.state.lock:
            return [
                {
                    "id": company["id"],
                    "name": company["name"],
                    "connections": [
                        {
                            "id": c["id"],
                            "sourceType": c["sourceType"],
                            "status": c["status"],
                            "platformName": c["platformName"],
                        }
                        for c in company["dataConnections"]
                    ],
                }
                for company in self.state.companies.values()
            ]

    def linked_company_ids(self) -> list[str]:
        """Companies whose connections are all Linked."""
        return [c["id"] for c in self.companies() if all(x["status"] == "Linked" for x in c["connections"])]

    def deauthorized_company_ids(self) -> list[str]:
        """Companies with at least one Deauthorized connection."""
        return [
            c["id"] for c in self.companies() if any(x["status"] == "Deauthorized" for x in c["connections"])
        ]

    def connection_id(self, company_id: str, source_type: str = "Accounting") -> str | None:
        """The company's first connection of ``source_type``, or ``None``.

        :param company_id: the company id.
        :param source_type: ``Accounting``, ``Banking`` or ``Commerce``.
        """
        for connection in self.state.company(company_id)["dataConnections"]:
            if connection["sourceType"] == source_type:
                return connection["id"]
        return None

    def bank_account_ids(self, company_id: str, connection_id: str | None = None) -> list[str]:
        """Ids of the bank accounts (``bankAccounts`` records) of the company's accounting connection.

        :param company_id: the company id.
        :param connection_id: a connection; default: the company's first one of the type's source type.
        """
        state = self.state
        with state.lock:
            connection_id = connection_id or self.connection_id(company_id, "Accounting")
            return state.bank_account_ids(company_id, connection_id)

    def set_connection_status(self, company_id: str, connection_id: str, status: str) -> None:
        """Change a connection's status (``Linked``, ``Deauthorized``, ...).

        :param company_id: the company id.
        :param connection_id: a connection; default: the company's first one of the type's source type.
        :param status: ``Linked``, ``Deauthorized``, ``Unlinked`` or ``PendingAuth``.
        """
        with self.state.lock:
            self.state.connection(company_id, connection_id)["status"] = status

    # -- records -----------------------------------------------------------------------------------
    def records(
        self, company_id: str, data_type: str, connection_id: str | None = None, account_id: str | None = None
    ) -> list[dict]:
        """The truth for one collection, deleted records included (empty if the type never synced).

        :param company_id: the company id.
        :param data_type: the catalogue key (e.g. ``invoices``).
        :param connection_id: a connection; default: the company's first one of the type's source type.
        :param account_id: the bank account id (``bankTransactions`` only).
        """
        with self._collection(company_id, data_type, connection_id, account_id) as collection:
            return [dict(record) for record in collection.records.values()]

    def put_record(
        self,
        company_id: str,
        data_type: str,
        record: dict,
        connection_id: str | None = None,
        account_id: str | None = None,
    ) -> dict:
        """Add (or replace, by ``id``) one record exactly as given, as if a sync had written it.

        Values are served verbatim: a :class:`~decimal.Decimal` keeps every digit on the wire, a string with a
        lone surrogate goes out as its ``\\uXXXX`` escape. Over HTTP, numbers in the body are read as decimals.

        :param company_id: the company id.
        :param data_type: the catalogue key.
        :param record: the record; it needs an ``id``.
        :param connection_id: a connection; default: the company's first one of the type's source type.
        :param account_id: the bank account id (``bankTransactions`` only).
        """
        with self._collection(company_id, data_type, connection_id, account_id, settle=False) as collection:
            collection.records[str(record["id"])] = dict(record)
            collection.changed()
            return {"id": record["id"]}

    def remove_record(
        self,
        company_id: str,
        data_type: str,
        record_id: str,
        connection_id: str | None = None,
        account_id: str | None = None,
    ) -> dict:
        """Remove one record outright, leaving no trace (as Codat drops a record of a type without a deleted
        flag, or a bank account it no longer has: its transactions then answer 404). Returns whether it was there.

        :param company_id: the company id.
        :param data_type: the catalogue key.
        :param record_id: the record's ``id``.
        :param connection_id: a connection; default: the company's first one of the type's source type.
        :param account_id: the bank account id (``bankTransactions`` only).
        """
        with self._collection(company_id, data_type, connection_id, account_id) as collection:
            removed = collection.records.pop(str(record_id), None) is not None
            collection.changed()
            return {"removed": removed}

    @contextmanager
    def _collection(
        self,
        company_id: str,
        data_type: str,
        connection_id: str | None,
        account_id: str | None,
        *,
        settle: bool = True,
    ) -> Iterator[Any]:
        """One collection, under the state's lock (after the syncs due by now have settled, unless not)."""
        state = self.state
        with state.lock:
            if settle:
                state.settle()
            yield state.collection(company_id, *self._scope(company_id, data_type, connection_id, account_id))

    def _scope(
        self, company_id: str, data_type: str, connection_id: str | None, account_id: str | None
    ) -> tuple:
        entry = get_data_type(data_type)
        if entry.scope is not Scope.COMPANY and not connection_id:
            default = self.state.default_connection(company_id, entry)
            connection_id = default["id"] if default else None
        if entry.scope is Scope.BANK_ACCOUNT and not account_id:
            raise ValueError("bankTransactions are per bank account: pass account_id.")
        return entry, connection_id or "", account_id or ""

    def mutate(
        self,
        company_id: str,
        data_type: str,
        created: int = 0,
        modified: int = 0,
        deleted: int = 0,
        connection_id: str | None = None,
    ) -> dict:
        """Change records now, as a sync completing now would (``modifiedDate`` = now; a new
        successful dataset shows in dataStatus and history). Returns the changed ids.

        :param company_id: the company id.
        :param data_type: the catalogue key (e.g. ``invoices``).
        :param created: records to create.
        :param modified: records to modify.
        :param deleted: records to delete (``metadata.isDeleted: true`` on accounting types).
        :param connection_id: a connection; default: the company's first one of the type's source type.
        """
        return self.state.mutate(company_id, data_type, created, modified, deleted, connection_id)

    # -- syncs and time ----------------------------------------------------------------------------
    def set_sync_seconds(self, seconds: float) -> None:
        """Duration of syncs queued from now on.

        :param seconds: sync duration; 0 finishes syncs at once.
        """
        self.state.sync_seconds = float(seconds)

    def advance(self, seconds: float) -> None:
        """Move the simulated clock forward.

        :param seconds: how far to move the clock.
        """
        with self.state.lock:
            self.state.clock.advance(float(seconds))
            self.state.settle()

    def now(self) -> str:
        """The simulated time, formatted like Codat's timestamps."""
        from airflow_provider_codat.simulator.clock import fmt

        return fmt(self.state.clock.now())

    def complete_running_syncs(self) -> None:
        """Every running sync finishes now."""
        self.state.complete_running_syncs()

    def fail_next_sync(
        self,
        company_id: str,
        data_type: str,
        status: str = "FetchError",
        error_message: str = "The source platform returned an error.",
    ) -> None:
        """The next sync queued for this company and type ends in ``status``.

        :param company_id: the company id.
        :param data_type: the catalogue key (e.g. ``invoices``).
        :param status: the final status (``FetchError``, ``AuthError``...).
        :param error_message: the dataset's ``errorMessage``.
        """
        get_data_type(data_type)
        self.state.fail_next_sync(company_id, data_type, status, error_message)

    def set_in_progress_status(self, status: int) -> None:
        """HTTP status of the in-progress error: 400 (default) or 409.

        :param status: 400 or 409.
        """
        if status not in (400, 409):
            raise ValueError("The in-progress status is 400 or 409.")
        self.state.in_progress_status = int(status)

    def data_types(self) -> list[str]:
        return list(CATALOGUE)

    # -- faults ------------------------------------------------------------------------------------
    def add_fault(
        self,
        kind: str,
        *,
        path: str | None = None,
        method: str | None = None,
        times: int | None = 1,
        status: int | None = None,
        retry_after: float | str | None = None,
        delay: float | None = None,
        after_page: int = 1,
        count: int = 2,
        body_format: str = "json",
        echo: str = "header",
        body: Any = None,
    ) -> dict:
        """Inject a fault; see :class:`~airflow_provider_codat.simulator.faults.Fault`.

        :param kind: one of :data:`~airflow_provider_codat.simulator.faults.KINDS`.
        :param path: regex searched in the request path (``None``: all).
        :param method: HTTP method (``None``: any).
        :param times: requests affected (``None``: until cleared).
        :param status: ``server_error`` status: 500, 502, 503 or 504.
        :param retry_after: ``rate_limit`` ``Retry-After`` value (seconds or an HTTP date).
        :param delay: ``latency`` seconds; ``trickle`` seconds between bytes of the body.
        :param after_page: ``write_during_paging``/``restamp_during_paging``: the page after which records
            change; ``link_skip``/``link_cycle``: the page whose next link lies.
        :param count: ``restamp_during_paging``: records re-stamped.
        :param body_format: ``echo_auth``: ``json`` or ``html``.
        :param echo: ``echo_auth``: how the ``Authorization`` header is repeated (``header``, ``lower``,
            ``urlencoded``, ``unpadded``, ``folded``, ``key``, ``entities``).
        :param body: ``malformed``: the JSON value answered (200) instead of the real one.
        """
        fault = Fault(
            kind,
            path,
            method,
            times,
            status,
            retry_after,
            delay,
            after_page,
            body=body,
            count=count,
            body_format=body_format,
            echo=echo,
        )
        return self.state.faults.add(fault).as_json()

    def faults(self) -> list[dict]:
        return self.state.faults.list()

    def clear_faults(self) -> None:
        self.state.faults.clear()

    # -- request log -------------------------------------------------------------------------------
    def request_log(self) -> list[dict]:
        """Every API request so far (control requests excluded): ``method``, ``path``, ``query``, ``time``
        (arrival, epoch seconds on the simulated clock), ``client`` (IP), ``status`` (``None`` if dropped) and
        ``limit`` (``minute``, ``daily`` or ``concurrent`` for a rate limit's 429, else ``None``)."""
        with self.state.lock:
            return [dict(entry) for entry in self.state.request_log]

    def reset_request_log(self) -> None:
        """Forget the logged requests and the in-flight peaks (the limits' own counters carry on)."""
        with self.state.lock:
            self.state.request_log.clear()
            self.state.limits.peak_in_flight.clear()

    def request_count(self) -> int:
        return len(self.state.request_log)

    # -- rate limits -------------------------------------------------------------------------------
    def rate_limits(self) -> dict:
        """The limits in force and what they saw: ``limits`` (the settings), ``quota`` (the current period's
        ``limit``, ``used``, ``remaining``, ``reset``), ``requests`` (logged), ``busiest_minute`` (most
        arrivals in any 60 seconds, 429s included), ``rejected`` (429s by limit), ``in_flight`` and
        ``peak_in_flight`` (per company); counts are since the log was last reset."""
        state = self.state
        with state.lock:
            entries = list(state.request_log)
        rejected = dict.fromkeys(LIMIT_NAMES, 0)
        for entry in entries:
            if entry["limit"] is not None:
                rejected[entry["limit"]] += 1
        limits = state.limits
        return {
            "limits": limits.settings.as_json(),
            "quota": limits.quota(state.clock.timestamp()),
            "requests": len(entries),
            "busiest_minute": busiest_window(entry["time"] for entry in entries),
            "rejected": rejected,
            "in_flight": limits.in_flight(),
            "peak_in_flight": dict(limits.peak_in_flight),
        }

    def set_rate_limits(self, **changes) -> dict:
        """Change limits on the running simulator; only those given change. Returns the limits in force.

        :param changes: any of ``requests_per_minute``, ``daily_quota``, ``quota_period_seconds`` and
            ``concurrent_per_company`` (see :class:`~.world.SimulatorState`; ``None`` as there). A new
            ``quota_period_seconds`` starts a fresh period now.
        """
        unknown = set(changes) - set(LimitSettings.__dataclass_fields__)
        if unknown:
            raise ValueError(
                f"Unknown rate limit {', '.join(sorted(unknown))}; use "
                f"{', '.join(LimitSettings.__dataclass_fields__)}."
            )
        state = self.state
        return state.limits.configure(state.clock.timestamp(), **changes).as_json()


# Operations reachable over HTTP, by name.
OPERATIONS = (
    "reset",
    "companies",
    "linked_company_ids",
    "deauthorized_company_ids",
    "connection_id",
    "bank_account_ids",
    "set_connection_status",
    "records",
    "mutate",
    "put_record",
    "remove_record",
    "set_sync_seconds",
    "advance",
    "now",
    "complete_running_syncs",
    "fail_next_sync",
    "set_in_progress_status",
    "data_types",
    "add_fault",
    "faults",
    "clear_faults",
    "request_log",
    "reset_request_log",
    "request_count",
    "rate_limits",
    "set_rate_limits",
    *WEBHOOK_OPERATIONS,
)


def control_router() -> APIRouter:
    """``GET|POST /_simulator/{operation}``: keyword arguments from the JSON body (or the query string)."""
    router = APIRouter()

    @router.api_route("/_simulator/{operation}", methods=["GET", "POST"])
    async def operate(request: Request, operation: str) -> Response:
        app = request.app
        control = SimulatorControl(
            lambda: app.state.simulator, lambda new: setattr(app.state, "simulator", new)
        )
        if operation not in OPERATIONS:
            body = error_body(
                404, f"Unknown simulator operation {operation!r}; use one of {', '.join(OPERATIONS)}."
            )
            return Response(json.dumps(body), 404, media_type="application/json")
        raw = await request.body()
        # Records put verbatim keep every digit of their decimals.
        parse_float = Decimal if operation == "put_record" else float
        kwargs = json.loads(raw, parse_float=parse_float) if raw.strip() else dict(request.query_params)
        method = getattr(control, operation)
        try:
            inspect.signature(method).bind(**kwargs)
            result = method(**kwargs)
        except (TypeError, ValueError, SimulatorError) as exc:
            status = exc.status if isinstance(exc, SimulatorError) else 400
            return Response(json.dumps(error_body(status, str(exc))), status, media_type="application/json")
        return Response(dumps({"result": result}), 200, media_type="application/json")

    return router
