"""Columns of a small table looked up for each row of another, in that other's row order (Arrow's joins do not
keep the order of their rows)."""

from __future__ import annotations

import pyarrow as pa

_ROW = "_row"


def looked_up(rows: pa.Table, found: pa.Table, key: str) -> pa.Table:
    """``rows`` with ``found``'s other columns beside each row (null where its key is not in ``found``), in the
    order of ``rows``; ``found`` holds each key once.

    :param rows: the rows to look up, with the column ``key``.
    :param found: the table looked in, with the column ``key``.
    :param key: the column both share.
    """
    numbered = rows.append_column(_ROW, pa.array(range(rows.num_rows), pa.int64()))
    return numbered.join(found, key, join_type="left outer").sort_by(_ROW).drop_columns([_ROW])
