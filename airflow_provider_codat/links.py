"""CodatCompanyLink: an extra link from a task to its company's page in the Codat portal."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

# The operators push the portal URL under this key before they return or start waiting.
COMPANY_URL_XCOM_KEY = "codat_company_url"


class CodatCompanyLink(BaseOperatorLink):
    """ "Codat company": the company's page in the Codat portal, from the URL the task pushed to XCom."""

    name = "Codat company"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        url = XCom.get_value(ti_key=ti_key, key=COMPANY_URL_XCOM_KEY)
        return url if isinstance(url, str) else ""


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
        import logging

        logging.getLogger(__name__).warning("Could not push the Codat company link: %s", exc)
        return None
    return url
