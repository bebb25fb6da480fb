"""The page's routes on the provider's FastAPI app (mounted at ``/codat``): ``/codat/health`` and its data.

================================  ======================================  ==============================
``GET /health``                   the page's shell: no data               anyone (3.1.0's iframe sends no token)
``GET /health/fragment``          the server-rendered figures and list    a signed-in user: their DAGs' companies
``GET /health/data``              the same as JSON (scripts, the bench)   a signed-in user: their DAGs' companies
================================  ======================================  ==============================

A user sees only the companies recorded by DAGs the auth manager lets them read.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy import func, select

from airflow_provider_codat.health.fold import fold_if_due
from airflow_provider_codat.health.query import Ask, deployment, portfolio
from airflow_provider_codat.health.schema import TABLES
from airflow_provider_codat.health.view import fragment, shell
from airflow_provider_codat.version_compat import (
    TOKEN_IN_LOCAL_STORAGE,
    plugin_auth_manager,
    plugin_user_dependency,
)

log = logging.getLogger(__name__)
PAGE_PATH = "/health"


def _asked(
    filter: str = Query("all"), search: str = Query(""), sort: str = Query("state"), page: int = Query(1)
) -> Ask:
    """What the page asks for, from its query string (both data routes take the same)."""
    return Ask.of(filter=filter, search=search, sort=sort, page=page)


Asked = Annotated[Ask, Depends(_asked)]


def health_router() -> APIRouter:
    """The routes, to include in the app mounted at ``/codat``."""
    router = APIRouter()
    signed_in = plugin_user_dependency()

    @router.get(PAGE_PATH, response_class=HTMLResponse)
    def page(request: Request) -> HTMLResponse:
        fragment_url = request.scope.get("root_path", "") + PAGE_PATH + "/fragment"
        return HTMLResponse(shell(fragment_url=fragment_url, token_in_local_storage=TOKEN_IN_LOCAL_STORAGE))

    @router.get(PAGE_PATH + "/fragment", response_class=HTMLResponse)
    def page_data(ask: Asked, user: Any = signed_in) -> HTMLResponse:
        now = datetime.now(tz=UTC)
        found, figures = read_health(user, ask, now)
        return HTMLResponse(fragment(found, figures, now=now), headers={"Cache-Control": "no-store"})

    @router.get(PAGE_PATH + "/data", response_class=JSONResponse)
    def data(ask: Asked, user: Any = signed_in) -> JSONResponse:
        now = datetime.now(tz=UTC)
        found, figures = read_health(user, ask, now)
        companies = [
            {
                "company_id": line.company_id,
                "name": line.name,
                "state": line.state,
                "types": [_plain(t) for t in line.types],
                "connections": [_plain(c) for c in line.connections],
            }
            for line in found["companies"]
        ]
        payload = {
            "states": found["states"],
            "matching": found["matching"],
            "companies": companies,
            **figures,
        }
        # Plain values already: a Response skips FastAPI's encoder, which walks every value (tens of ms a page).
        return JSONResponse(payload, headers={"Cache-Control": "no-store"})

    return router


def read_health(user: Any, ask: Ask, now: datetime) -> tuple[dict[str, Any], dict[str, Any]]:
    """The companies ``user`` may see as ``ask`` selects them, and the deployment's figures."""
    readable = plugin_auth_manager().get_authorized_dag_ids(user=user, method="GET")
    fold_if_due()
    with TABLES.engine().connect() as connection:
        found = portfolio(connection, readable, ask, now=now)
        figures = deployment(connection, now=now, inbox_waiting=_inbox_waiting())
    return found, figures


def _inbox_waiting() -> int | None:
    from airflow_provider_codat.webhooks.inbox import INBOX
    from airflow_provider_codat.webhooks.store import TABLE

    try:
        with TABLE.engine().connect() as connection:
            waiting = select(func.count()).select_from(INBOX).where(INBOX.c.processed_at.is_(None))
            return int(connection.execute(waiting).scalar() or 0)
    except Exception:  # the page shows "?" rather than failing
        log.warning("Could not count the webhook inbox", exc_info=True)
        return None


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}
