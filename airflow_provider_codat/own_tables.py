"""Tables of this provider's own in Airflow's metadata database (the webhook inbox, the health record).

Airflow's migrations do not know them, so they are created on first use in each process, idempotently: several
processes may race to create the same table.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, inspect
from sqlalchemy.exc import OperationalError, ProgrammingError


class OwnTables:
    """Airflow's metadata database engine with ``tables`` created on it, once per process.

    :param tables: the tables, in creation order.
    """

    def __init__(self, tables: Sequence[Table]) -> None:
        self.tables = tuple(tables)
        self._lock = threading.Lock()
        self._ready = False
        self._engine: Any = None

    def engine(self) -> Any:
        """The engine Airflow's sessions use, the tables created if missing."""
        if self._engine is None:
            from airflow.utils.session import create_session

            with create_session() as session:
                engine = session.get_bind()
            self.ensure(engine)
            self._engine = engine
        return self._engine

    def ensure(self, bind: Any) -> None:
        """Create the missing tables through ``bind`` (an engine or a connection); a no-op once done."""
        if self._ready:
            return
        with self._lock:
            if not self._ready:
                for table in self.tables:
                    _create(table, bind)
                self._ready = True


def _create(table: Table, bind: Any) -> None:
    try:
        table.create(bind=bind, checkfirst=True)
    except (OperationalError, ProgrammingError):
        # Another process created it between the check and the CREATE: fine if it is there now.
        if not inspect(bind).has_table(table.name):
            raise
