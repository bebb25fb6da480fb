"""CodatCompanyLink: an extra link from a task to its company's page in the Codat portal."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

# The operators push the portal URL under this key before they return or start waiting.
COMPANY_URL_XCOM_KEY = "codat_company_url"


class CodatCompanyLink(BaseOperatorLink):
    """ "Codat company": the company's page in the Codat portal (the connection's ``portal_url`` extra).

    The URL the task pushed to XCom when there is one (the refresh and wait tasks push it before they wait);
    otherwise it is built from the operator's ``company_id`` and its hook's connection. Airflow asks for the
    link when the task finishes, on the worker, where ``company_id`` is rendered (mapped tasks included), and
    keeps the answer for the UI.
    """

    name = "Codat company"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        url = XCom.get_value(ti_key=ti_key, key=COMPANY_URL_XCOM_KEY)
        if isinstance(url, str):
            return url
        return _url_from_operator(operator)


def _url_from_operator(operator: BaseOperator) -> str:
    """The company page for an operator with a rendered ``company_id`` and a Codat ``hook``; else ``""``."""
    from airflow_provider_codat.values import CompanyId

    company_id, hook = getattr(operator, "company_id", None), getattr(operator, "hook", None)
    if not isinstance(company_id, str) or not hasattr(hook, "portal_url"):
        return ""
    try:
        company_id = CompanyId.parse(company_id, "company_id")
    except ValueError:  # not rendered (a template) or not a company id: no link rather than a wrong one
        return ""
    try:
        return hook.portal_url(company_id)
    except Exception as exc:  # a link is a convenience: a connection problem shows in the task, not here
        logging.getLogger(__name__).warning("Could not build the Codat company link: %s", exc)
        return ""


def push_company_link(context, hook, company_id: str) -> str | None:
    """Push the company's portal URL (for :class:`CodatCompanyLink`), also under the link's own key so the UI
    shows it while the task is still waiting. Never fails the task: a link is a convenience.

    :param context: the task context.
    :param hook: a ``CodatHook`` (its ``portal_url`` reads the connection's ``portal_url`` extra).
    :param company_id: the company.
    """
    ti = context.get("ti") if context else None
    if ti is None:
        return None
    try:
        url = hook.portal_url(company_id)
        ti.xcom_push(key=COMPANY_URL_XCOM_KEY, value=url)
        ti.xcom_push(key=CodatCompanyLink().xcom_key, value=url)
    except Exception as exc:
        logging.getLogger(__name__).warning("Could not push the Codat company link: %s", exc)
        return None
    return url
