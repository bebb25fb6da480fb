"""A minimal stand-in for the Codat portal's company page, so that the "Codat company" link works locally.

``GET /_simulator/companies/{company_id}/summary`` answers an HTML page with the company's name, its
connections and the sync status of each data type. The simulator's connection (``RunningSimulator.
connection_json``, ``python -m airflow_provider_codat.simulator``) sets the ``portal_url`` extra to
``{base_url}/_simulator``, so the links the tasks push land here. Like every ``/_simulator`` route it needs
no API key: a browser opens it as it is.
"""

from __future__ import annotations

from html import escape

from fastapi import APIRouter, Request, Response

from airflow_provider_codat.simulator.error_bodies import SimulatorError

PORTAL_PATH = "/_simulator"
_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{name} · Codat simulator</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:left}}</style></head>
<body><p>Codat simulator: a local stand-in for the company's page in the Codat portal.</p>
<h1>{name}</h1><p>Company id <code>{company_id}</code></p>
<h2>Connections</h2>{connections}
<h2>Data types</h2>{statuses}
</body></html>
"""


def _table(header: tuple[str, ...], rows: list[tuple]) -> str:
    if not rows:
        return "<p>None.</p>"
    head = "".join(f"<th>{escape(cell)}</th>" for cell in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(str(cell))}</td>" for cell in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def company_page(company: dict, data_status: dict) -> str:
    """The HTML page of one company.

    :param company: the company as the simulator holds it (``name``, ``id``, ``dataConnections``).
    :param data_status: its ``dataStatus`` body.
    """
    connections = [
        (c["platformName"], c["sourceType"], c["status"], c["id"]) for c in company["dataConnections"]
    ]
    statuses = [
        (key, entry.get("currentStatus", ""), entry.get("lastSuccessfulSync", "never"))
        for key, entry in sorted(data_status.items())
    ]
    return _PAGE.format(
        name=escape(company["name"]),
        company_id=escape(company["id"]),
        connections=_table(("platform", "source type", "status", "connection id"), connections),
        statuses=_table(("data type", "status", "last successful sync"), statuses),
    )


def portal_router() -> APIRouter:
    """The company page route (mounted before the control routes' ``/_simulator/{operation}``)."""
    router = APIRouter()

    @router.get(PORTAL_PATH + "/companies/{company_id}/summary")
    async def company_summary(request: Request, company_id: str) -> Response:
        state = request.app.state.simulator
        try:
            with state.lock:
                company = dict(state.company(company_id))
            statuses = state.data_status(company_id)
        except SimulatorError as exc:
            return Response("<p>No such company in the simulator.</p>", exc.status, media_type="text/html")
        return Response(company_page(company, statuses), media_type="text/html")

    return router
