"""The simulated Codat API: FastAPI routes over a :class:`SimulatorState`.

Read routes are generated from the catalogue (``datatypes.CATALOGUE``), so every data type it lists is
served at the path it names.
"""

from __future__ import annotations

import json
from datetime import datetime

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from airflow_provider_codat.datatypes import CATALOGUE, DataType, Kind, Scope
from airflow_provider_codat.simulator import data as gen
from airflow_provider_codat.simulator.control import control_router
from airflow_provider_codat.simulator.encoding import dumps
from airflow_provider_codat.simulator.error_bodies import SimulatorError, error_body
from airflow_provider_codat.simulator.middleware import FrontDoor
from airflow_provider_codat.simulator.page_envelope import envelope, parse_paging, shuffle_ties
from airflow_provider_codat.simulator.portal import portal_router
from airflow_provider_codat.simulator.query_filter import QueryError, apply
from airflow_provider_codat.simulator.reports import commerce_info, company_info, financial_statement
from airflow_provider_codat.simulator.schedules import CLIENT_ID, client_settings
from airflow_provider_codat.simulator.world import SimulatorState


def _json(body, status: int = 200) -> Response:
    return Response(dumps(body), status_code=status, media_type="application/json")


def _state(request: Request) -> SimulatorState:
    return request.app.state.simulator


def _paged(request: Request, records: list[dict]) -> Response:
    """Filter, sort and page a list that is not a cached collection (companies, connections, history)."""
    params = request.query_params
    page, size = parse_paging(params.get("page"), params.get("pageSize"))
    query, order_by = params.get("query"), params.get("orderBy")
    try:
        selected = apply(records, query, order_by)
    except QueryError as exc:
        raise SimulatorError(400, str(exc)) from None
    return _json(envelope(request.url.path, selected, page, size, query, order_by))


def _register_platform_routes(app: FastAPI) -> None:
    """Every route of the platform API but the data reads (:func:`_register_read_routes`)."""
    _register_company_routes(app)
    _register_sync_routes(app)
    _register_settings_routes(app)


def _register_company_routes(app: FastAPI) -> None:
    """Companies and their connections: listed (paged) and one by one."""

    @app.get("/companies")
    async def list_companies(request: Request) -> Response:
        state = _state(request)
        with state.lock:
            companies = list(state.companies.values())
        return _paged(request, companies)

    @app.get("/companies/{company_id}")
    async def get_company(request: Request, company_id: str) -> Response:
        state = _state(request)
        with state.lock:
            return _json(state.company(company_id))

    @app.get("/companies/{company_id}/connections")
    async def list_connections(request: Request, company_id: str) -> Response:
        state = _state(request)
        with state.lock:
            connections = list(state.company(company_id)["dataConnections"])
        return _paged(request, connections)

    @app.get("/companies/{company_id}/connections/{connection_id}")
    async def get_connection(request: Request, company_id: str, connection_id: str) -> Response:
        state = _state(request)
        with state.lock:
            return _json(state.connection(company_id, connection_id))


def _register_sync_routes(app: FastAPI) -> None:
    """``dataStatus``, queueing syncs (``data/all``, ``data/queue``) and their history."""

    @app.get("/companies/{company_id}/dataStatus")
    async def data_status(request: Request, company_id: str) -> Response:
        return _json(_state(request).data_status(company_id))

    @app.post("/companies/{company_id}/data/all")
    async def queue_all(request: Request, company_id: str) -> Response:
        _state(request).queue_all(company_id)
        return Response(status_code=204)

    @app.post("/companies/{company_id}/data/queue/{data_type}")
    async def queue_one(request: Request, company_id: str, data_type: str) -> Response:
        state = _state(request)
        dataset = state.queue(company_id, data_type, request.query_params.get("connectionId"))
        with state.lock:
            return _json(dataset.as_json(state.clock.now()))

    @app.get("/companies/{company_id}/data/history")
    async def history(request: Request, company_id: str) -> Response:
        return _paged(request, _state(request).history(company_id))

    @app.get("/companies/{company_id}/data/history/{dataset_id}")
    async def history_one(request: Request, company_id: str, dataset_id: str) -> Response:
        return _json(_state(request).dataset(company_id, dataset_id))


def _register_settings_routes(app: FastAPI) -> None:
    """Sync settings (``simulator/schedules.py``): the client's, and each company's (read and set)."""

    @app.get("/profile/syncSettings")
    async def sync_settings(request: Request) -> Response:
        return _json({"clientId": CLIENT_ID, "settings": client_settings(), "overridesDefaults": False})

    @app.get("/companies/{company_id}/syncSettings")
    async def company_sync_settings(request: Request, company_id: str) -> Response:
        state = _state(request)
        with state.lock:
            return _json(state.schedules.company_settings(company_id))

    @app.post("/companies/{company_id}/syncSettings")
    async def set_company_sync_settings(request: Request, company_id: str) -> Response:
        state = _state(request)
        try:
            body = json.loads(await request.body())
        except ValueError:
            raise SimulatorError(400, "The body is not JSON.") from None
        with state.lock:
            state.settle()
            state.schedules.set_company_settings(company_id, body)
        return Response(status_code=204)


def _scope_ids(state: SimulatorState, data_type: DataType, company_id: str, params: dict) -> tuple[str, str]:
    """Check the company, connection and bank account in the path; return (connection_id, account_id)."""
    state.company(company_id)
    connection_id, account_id = params.get("connection_id", ""), params.get("account_id", "")
    if data_type.scope is not Scope.COMPANY:
        connection = state.connection(company_id, connection_id)
        if connection["sourceType"] != data_type.source_type:
            raise SimulatorError(
                404,
                f"Data type {data_type.key} is not supported by the {connection['platformName']} connection",
            )
    if data_type.scope is Scope.BANK_ACCOUNT and account_id not in state.bank_account_ids(
        company_id, connection_id
    ):
        raise SimulatorError(404, f"Bank account {account_id} not found")
    return connection_id, account_id


def _read_route(data_type: DataType):
    async def read(request: Request) -> Response:
        state = _state(request)
        params = request.path_params
        company_id = params["company_id"]
        with state.lock:
            state.settle()
            connection_id, account_id = _scope_ids(state, data_type, company_id, params)
            state.readable(company_id, data_type)
            if data_type.kind is Kind.SNAPSHOT:
                return _json(_snapshot(state, data_type, company_id, connection_id, request))
            query, order_by = request.query_params.get("query"), request.query_params.get("orderBy")
            page, size = parse_paging(request.query_params.get("page"), request.query_params.get("pageSize"))
            collection = state.collection(company_id, data_type, connection_id, account_id)
            try:
                records = collection.view(query, order_by)
            except QueryError as exc:
                raise SimulatorError(400, str(exc)) from None
            method, path = request.method, request.url.path
            if state.faults.take(method, path, ("empty_object",)):
                return _json({})
            if state.faults.take(method, path, ("unstable_order",)):
                records = shuffle_ties(records, state.randomness)
            body = envelope(path, records, page, size, query, order_by)
            lie = state.faults.take(method, path, ("link_skip", "link_cycle"), page=page)
            if lie is not None and "next" in body["_links"]:
                target = page + 2 if lie.kind == "link_skip" else 1
                href = body["_links"]["next"]["href"]
                body["_links"]["next"]["href"] = href.replace(f"page={page + 1}&", f"page={target}&", 1)
            response = _json(body)
            restamp = state.faults.take(method, path, ("restamp_during_paging",), page=page)
            if restamp is not None:
                # Codat re-stamps cache entries with no sync (a data-model change): already served records
                # move to the end of the modifiedDate order, and dataStatus does not move.
                served = [r["id"] for r in records[: page * size]]
                state.restamp(collection, served[: restamp.count])
            if state.faults.take(method, path, ("write_during_paging",), page=page):
                # Someone writes while the client pages: as if a sync finished right after this page.
                state.mutate(
                    company_id,
                    data_type.key,
                    created=2,
                    modified=2,
                    deleted=1,
                    connection_id=connection_id or None,
                )
            return response

    read.__name__ = f"read_{data_type.key.replace('-', '_')}"
    return read


def _snapshot(
    state: SimulatorState, data_type: DataType, company_id: str, connection_id: str, request: Request
) -> dict:
    company = state.company(company_id)
    now = state.clock.now()  # one reading: every date of the answer is about the same moment
    if data_type.key == "company":
        return company_info(company, now)
    if data_type.key == "commerce-companyInfo":
        return commerce_info(company)
    params = request.query_params
    try:
        period_length = int(params["periodLength"])
        periods = int(params["periodsToCompare"])
    except (KeyError, ValueError):
        raise SimulatorError(400, "periodLength and periodsToCompare are required integers.") from None
    if not 1 <= period_length <= 12 or not 1 <= periods <= 24:
        raise SimulatorError(400, "periodLength must be 1-12 and periodsToCompare 1-24.")
    start_month = None
    if params.get("startMonth"):
        try:
            start_month = datetime.fromisoformat(params["startMonth"].replace("Z", "+00:00"))
        except ValueError:
            raise SimulatorError(400, "startMonth must be a date.") from None
    success = state.last_success(company_id, data_type.key)
    rng = gen.collection_rng(state.seed, company_id, data_type.key, success.id if success else "")
    return financial_statement(data_type.key, rng, now, period_length, periods, start_month)


def _register_read_routes(app: FastAPI) -> None:
    for data_type in CATALOGUE.values():
        app.add_api_route(data_type.path, _read_route(data_type), methods=["GET"])


def create_app(state: SimulatorState) -> FastAPI:
    """Build the simulated Codat API around ``state``.

    :param state: the simulator's state; replace ``app.state.simulator`` to start afresh.
    """
    app = FastAPI(title="Codat simulator", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.simulator = state

    @app.exception_handler(SimulatorError)
    async def simulator_error(request: Request, exc: SimulatorError) -> Response:
        return _json(error_body(exc.status, exc.message, exc.service), exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = "Not found" if exc.status_code == 404 else str(exc.detail)
        return _json(error_body(exc.status_code, message), exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        return _json(error_body(400, "Bad request: invalid parameters."), 400)

    _register_platform_routes(app)
    _register_read_routes(app)
    app.include_router(portal_router())
    app.include_router(control_router())
    app.add_middleware(FrontDoor, get_state=lambda: app.state.simulator)
    return app
