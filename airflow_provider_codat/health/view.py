"""The page: a shell with no data (served to anyone, as Airflow 3.1.0's iframe cannot send a token) and the
server-rendered fragment its script fetches with the user's token (the only part that shows data).

Links cannot leave the iframe (it is sandboxed without top navigation): company ids and run ids are shown as
text that selects itself on a click, to paste into the grid's search.
"""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from typing import Any

from airflow_provider_codat.health.charts import bar_chart, line_chart
from airflow_provider_codat.health.query import FILTERS, PAGE_SIZE, SORTS, CompanyLine

_CSS = """
body{font:14px system-ui,sans-serif;margin:16px;color:#1a202c}
.cards{display:flex;gap:12px;flex-wrap:wrap}.card{border:1px solid #cbd5e0;border-radius:6px;padding:8px 12px}
.card b{display:block;font-size:20px}.warn{border-color:#c53030;background:#fff5f5}table{border-collapse:collapse;width:100%;margin-top:12px}
td,th{border-bottom:1px solid #e2e8f0;padding:4px 6px;text-align:left;vertical-align:top}
.s-Error{color:#c53030;font-weight:600}.s-Late{color:#b7791f;font-weight:600}.s-On{color:#2f855a}
code{background:#edf2f7;padding:0 3px;cursor:text;user-select:all}.chart{width:100%;height:80px;border-bottom:1px solid #cbd5e0}
.charts{display:flex;gap:24px}.charts>div{flex:1;min-width:0}h3{font-size:14px;margin:12px 0 4px}
.types td{border:0;padding:1px 6px;font-size:12px}form{display:flex;gap:8px;margin:12px 0}
"""

_SCRIPT = """
const form = document.getElementById("ask"), content = document.getElementById("content");
async function load(page) {
  const ask = new URLSearchParams(new FormData(form)); ask.set("page", page || 1);
  const headers = {};
  if (TOKEN_IN_LOCAL_STORAGE) { const t = localStorage.getItem("token"); if (t) headers.Authorization = "Bearer " + t; }
  const answer = await fetch(FRAGMENT + "?" + ask, {headers, credentials: "same-origin"});
  content.innerHTML = answer.ok ? await answer.text()
    : "<p>Sign in to Airflow to see the portfolio (" + answer.status + ").</p>";
}
form.addEventListener("change", () => load(1));
form.addEventListener("submit", (e) => { e.preventDefault(); load(1); });
content.addEventListener("click", (e) => { const p = e.target.dataset.page; if (p) load(p); });
load(1);
"""


def shell(*, fragment_url: str, token_in_local_storage: bool) -> str:
    """The page without data.

    :param fragment_url: the absolute path of the fragment (the app's mount point included).
    :param token_in_local_storage: send ``localStorage["token"]`` as a bearer header (Airflow 3.1.0).
    """
    filters = "".join(f"<option>{f}</option>" for f in FILTERS)
    sorts = "".join(f"<option>{s}</option>" for s in SORTS)
    return (
        '<!doctype html><html><head><meta charset="utf-8"><title>Codat portfolio health</title>'
        f"<style>{_CSS}</style></head><body><h2>Codat portfolio health</h2>"
        '<form id="ask"><label>Show <select name="filter">' + filters + "</select></label>"
        '<label>Search <input name="search" type="search" placeholder="name or id"></label>'
        '<label>Sort by <select name="sort">' + sorts + "</select></label></form>"
        '<div id="content">Loading…</div><script>'
        f"const FRAGMENT = {_js_string(fragment_url)}; "
        f"const TOKEN_IN_LOCAL_STORAGE = {'true' if token_in_local_storage else 'false'};"
        f"{_SCRIPT}</script></body></html>"
    )


def _js_string(text: str) -> str:
    import json

    return json.dumps(text).replace("<", "\\u003c")


def fragment(portfolio: dict[str, Any], deployment: dict[str, Any], *, now: datetime) -> str:
    """The data part: the deployment's figures and charts, then the asked page of companies."""
    return _deployment(portfolio["states"], deployment, now) + _companies(portfolio, now)


def _deployment(states: dict[str, int], figures: dict[str, Any], now: datetime) -> str:
    rate = figures["requests_per_minute"]
    quota = figures["quota"] or {}
    quota_line = "no quota reported yet"
    if quota:
        resets = quota.get("resets_at")
        when = datetime.fromtimestamp(resets, UTC).strftime("%Y-%m-%d %H:%M UTC") if resets else "unknown"
        quota_line = f"{quota.get('remaining')} of {quota.get('limit') or '?'} left, resets {when}"
        if nearly_spent(quota):
            quota_line += " (nearly spent)"
    cards = [
        ("Requests, last minute", f"{figures['requests_last_minute']} / {rate or '?'}"),
        ("Requests, last hour", f"{figures['requests_last_hour']} / {rate * 60 if rate else '?'}"),
        ("Daily quota", quota_line),
        ("Webhook inbox waiting", "?" if figures["inbox_waiting"] is None else figures["inbox_waiting"]),
        *((f"Companies {state}", count) for state, count in states.items()),
    ]
    warn = {"Daily quota"} if quota and nearly_spent(quota) else set()
    warn |= {"Companies Error"} if states.get("Error") else set()
    html = '<div class="cards">' + "".join(
        f'<div class="card{" warn" if label in warn else ""}" data-figure="{escape(label)}">{escape(label)}'
        f"<b>{escape(str(value))}</b></div>"
        for label, value in cards
    )
    html += '</div><div class="charts"><div><h3>Requests per minute, last 24 hours</h3>'
    html += line_chart(figures["per_minute"], title="Requests per minute, last 24 hours")
    html += "</div><div><h3>Records landed per day, last 30 days</h3>"
    html += bar_chart(figures["per_day"], title="Records landed per day, last 30 days")
    return html + "</div></div>"


def nearly_spent(quota: dict[str, Any]) -> bool:
    """The budget's own warning: at most twice its reserve left (:mod:`~airflow_provider_codat.budget`);
    without a reserve reported, at most a tenth of the quota."""
    remaining, limit = quota.get("remaining"), quota.get("limit")
    if remaining is None:
        return False
    if quota.get("reserve") is not None:
        return remaining <= 2 * quota["reserve"]
    return bool(limit) and remaining <= limit / 10


def _companies(portfolio: dict[str, Any], now: datetime) -> str:
    ask, matching = portfolio["ask"], portfolio["matching"]
    pages = max(1, -(-matching // PAGE_SIZE))
    nav = f"<p>{matching} companies match; page {ask.page} of {pages} "
    if ask.page > 1:
        nav += f'<button data-page="{ask.page - 1}">previous</button>'
    if ask.page < pages:
        nav += f'<button data-page="{ask.page + 1}">next</button>'
    rows = "".join(_company_row(line, now) for line in portfolio["companies"])
    return (
        nav + "</p><table><thead><tr><th>State</th><th>Company</th><th>Connections</th>"
        "<th>Data types: last sync at Codat, last landing and its run, records, table rows</th><th>Last error</th></tr>"
        f"</thead><tbody>{rows}</tbody></table>"
    )


def _company_row(line: CompanyLine, now: datetime) -> str:
    state_class = "s-" + line.state.split()[0]
    connections = (
        "<br>".join(
            f"{escape(c['platform'] or '?')}: {escape(c['status'] or '?')} <code>{escape(c['connection_id'])}</code>"
            for c in line.connections
        )
        or "—"
    )
    types = "".join(
        f"<tr><td>{escape(t['data_type'])}</td><td>synced {_ago(t['synced_at'], now)}</td>"
        f"<td>landed {_ago(t['landed_at'], now)}</td><td><code>{escape(t['landed_run_id'] or '—')}</code></td><td>{t['records'] if t['records'] is not None else '—'}</td>"
        f"<td>{t['table_rows'] if t['table_rows'] is not None else '—'}</td></tr>"
        for t in line.types
    )
    errors = [t for t in line.types if t["error"]]
    last = max(errors, key=lambda t: _aware(t["error_at"]), default=None)
    error = (
        f"{escape(last['error'])}<br>{_ago(last['error_at'], now)} in {escape(last['data_type'])}, task "
        f"<code>{escape(last['error_task'] or '')}</code> run <code>{escape(last['error_run_id'] or '')}</code>"
        if last
        else "—"
    )
    return (
        f'<tr data-company="{escape(line.company_id)}"><td class="{state_class}">{escape(line.state)}</td>'
        f"<td>{escape(line.name or '(no name)')}<br><code>{escape(line.company_id)}</code></td>"
        f'<td>{connections}</td><td><table class="types">{types}</table></td><td>{error}</td></tr>'
    )


def _aware(moment: Any) -> datetime:
    if moment is None:
        return datetime.min.replace(tzinfo=UTC)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _ago(moment: Any, now: datetime) -> str:
    if moment is None:
        return "never"
    seconds = int((now - _aware(moment)).total_seconds())
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f'<span title="{_aware(moment).isoformat()}">{seconds // size} {unit} ago</span>'
    return "just now"
