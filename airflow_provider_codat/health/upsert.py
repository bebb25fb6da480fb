"""Insert-or-update for the health tables, on Postgres and SQLite with ``ON CONFLICT``, elsewhere in two steps."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, and_, delete, insert


def upsert(connection: Any, table: Table, rows: Sequence[dict[str, Any]], *, add: Sequence[str] = ()) -> None:
    """Write ``rows`` into ``table`` keyed on its primary key: a row already there takes the new values.

    :param connection: a connection inside a transaction.
    :param table: one of :mod:`.schema`'s tables.
    :param rows: full rows (every column given).
    :param add: counter columns whose new value is added to the stored one instead of replacing it.
    """
    if not rows:
        return
    keys = [column.name for column in table.primary_key.columns]
    dialect = connection.dialect.name
    if dialect in ("postgresql", "sqlite"):
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        statement = dialect_insert(table)
        updates = {
            name: (table.c[name] + statement.excluded[name]) if name in add else statement.excluded[name]
            for name in rows[0]
            if name not in keys
        }
        connection.execute(statement.on_conflict_do_update(index_elements=keys, set_=updates), list(rows))
        return
    for row in rows:  # other databases: few rows per call, so one at a time is fine
        where = and_(*(table.c[name] == row[name] for name in keys))
        if add:
            stored = connection.execute(table.select().where(where)).mappings().first()
            if stored is not None:
                row = {**row, **{name: stored[name] + row[name] for name in add}}
        connection.execute(delete(table).where(where))
        connection.execute(insert(table).values(**row))
