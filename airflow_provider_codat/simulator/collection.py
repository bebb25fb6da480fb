"""A record collection: one data type's records in one scope, with cached filtered and sorted views."""

from __future__ import annotations

from collections import OrderedDict

from airflow_provider_codat.simulator.query_filter import apply


class Collection:
    """The records of one data type in one scope, in insertion order, with a small view cache.

    :param records: the initial records.
    """

    def __init__(self, records: list[dict]) -> None:
        self.records: dict[str, dict] = {record["id"]: record for record in records}
        self._views: OrderedDict[tuple, list[dict]] = OrderedDict()

    def changed(self) -> None:
        self._views.clear()

    def view(self, query: str | None, order_by: str | None) -> list[dict]:
        """Filtered and sorted records; cached until the collection changes, so paging is O(page)."""
        key = (query, order_by)
        if key in self._views:
            self._views.move_to_end(key)
            return self._views[key]
        result = apply(list(self.records.values()), query, order_by)
        self._views[key] = result
        if len(self._views) > 8:
            self._views.popitem(last=False)
        return result
