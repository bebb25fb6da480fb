"""Where a request budget lives, so that every process spending it sees the same numbers.

Each store keeps, under the budget's key:

* the log of recent requests that ``pyrate-limiter`` counts per window (its own SQLite, Redis or in-memory
  bucket);
* when the store was found empty (new, or emptied by a restart or a removed file): no token is given for one
  5-second slice after it (see :mod:`.request_budget`);
* leases on requests in flight per company: a counting semaphore across processes. Every lease expires, so a
  killed process cannot hold a company's places for ever. ``pyrate-limiter`` limits rates, not concurrency,
  and no well-kept library offers a cross-process semaphore over SQLite and Redis, hence these few statements;
* the daily quota as Codat last reported it (``X-Rate-Limit-*``).

``sqlite:///path`` serves every process of one machine with no server; ``redis://`` every machine that reaches
the Redis (:mod:`.redis_store`); ``memory`` one process (tests, or a single-process deployment).

Every store has a ``wait`` (:class:`~.outage.StoreWait`) naming the faults that mean it does not answer, and a
``generation`` that grows when its bucket must be built again (a SQLite file opened anew).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pyrate_limiter import InMemoryBucket, Rate, SQLiteBucket
from pyrate_limiter.abstracts import AbstractBucket

from airflow_provider_codat.budget.outage import StoreWait, url_without_credentials
from airflow_provider_codat.budget.quota import Quota, digest
from airflow_provider_codat.errors import CodatValidationError

__all__ = ["MemoryStore", "Quota", "SQLiteStore", "open_store"]

LOCK_WAIT = 5.0  # seconds one statement waits for a locked file before the budget backs off and looks again


class MemoryStore:
    """A budget for this process only (nothing to lose: it lives and dies with the process)."""

    generation = 1

    def __init__(self, key: str) -> None:
        self.key = key
        self._lock = threading.Lock()
        self._leases: dict[str, dict[str, float]] = {}
        self._quota: Quota | None = None
        self.wait = StoreWait(kind="memory store", url="memory", faults=(), advice="nothing")

    def bucket(self, rates: list[Rate]) -> AbstractBucket:
        return InMemoryBucket(rates)

    def found_empty_at(self) -> float | None:
        return None

    def discard(self) -> None:
        pass

    def take_lease(self, scope: str, limit: int, ttl: float) -> str | None:
        now = time.time()
        with self._lock:
            held = self._leases.setdefault(scope, {})
            for holder in [h for h, expires in held.items() if expires < now]:
                del held[holder]
            if len(held) >= limit:
                return None
            holder = uuid.uuid4().hex
            held[holder] = now + ttl
            return holder

    def drop_lease(self, scope: str, holder: str) -> None:
        with self._lock:
            self._leases.get(scope, {}).pop(holder, None)

    def read_quota(self) -> Quota | None:
        return self._quota

    def write_quota(self, quota: Quota) -> None:
        self._quota = quota

    def close(self) -> None:
        pass


class SQLiteStore:
    """A budget in one SQLite file: every process of the machine that opens it shares it (no server).

    The file is opened on first use, and opened anew when it was removed or replaced (each token looks): a
    process never goes on counting in a file the others no longer see. A new file counts as found empty.

    :param path: the file (its folder is created).
    :param key: the budget's name.
    """

    def __init__(self, path: str, key: str) -> None:
        self.key = key
        self.path = path
        self.generation = 0
        self._name = digest(key)
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._file: tuple[int, int] | None = None  # (device, inode) of the file open
        self._found_empty = 0.0
        self.wait = StoreWait(
            kind="SQLite file",
            url=f"sqlite:///{path}",
            faults=(sqlite3.DatabaseError, OSError),
            advice=(
                "that the file's folder exists and this user may write there, that the disk has free space, and "
                "that no other program keeps the file locked"
            ),
        )

    def _ready(self) -> sqlite3.Connection:
        """The open file, opened (again) when it is not, or no longer is, the file at ``path``."""
        with self._lock:
            try:
                stat = os.stat(self.path)
                current = (stat.st_dev, stat.st_ino)
            except FileNotFoundError:
                current = None
            if self._db is not None and current == self._file:
                return self._db
            self._close()
            self._open()
            assert self._db is not None
            return self._db

    def _open(self) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # Autocommit, each write in its own IMMEDIATE transaction; a busy file is waited for a while.
        db = sqlite3.connect(self.path, timeout=LOCK_WAIT, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS codat_in_flight (scope TEXT, holder TEXT PRIMARY KEY, expires REAL)"
            )
            db.execute("CREATE INDEX IF NOT EXISTS codat_in_flight_scope ON codat_in_flight (scope)")
            db.execute("CREATE TABLE IF NOT EXISTS codat_quota (budget TEXT PRIMARY KEY, quota TEXT)")
            db.execute("CREATE TABLE IF NOT EXISTS codat_found_empty (budget TEXT PRIMARY KEY, since REAL)")
            db.execute("INSERT OR IGNORE INTO codat_found_empty VALUES (?, ?)", (self._name, time.time()))
            (found_empty,) = db.execute(
                "SELECT since FROM codat_found_empty WHERE budget = ?", (self._name,)
            ).fetchone()
            stat = os.stat(self.path)
        except BaseException:
            db.close()
            raise
        self._db, self._file, self._found_empty = db, (stat.st_dev, stat.st_ino), found_empty
        self.generation += 1

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
        self._db, self._file = None, None

    def discard(self) -> None:
        """Forget the open file after a fault: the next use opens it afresh (no transaction left half-done)."""
        with self._lock:
            self._close()
            self.generation += 1

    def found_empty_at(self) -> float:
        """When the file open was found new (epoch seconds), opening it if need be."""
        self._ready()
        return self._found_empty

    def bucket(self, rates: list[Rate]) -> AbstractBucket:
        self._ready()
        return SQLiteBucket.init_from_file(
            rates, table=f"codat_requests_{self._name}", db_path=self.path, use_file_lock=True
        )

    def take_lease(self, scope: str, limit: int, ttl: float) -> str | None:
        db = self._ready()
        now, holder, scope = time.time(), uuid.uuid4().hex, f"{self._name}:{scope}"
        with self._lock:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute("DELETE FROM codat_in_flight WHERE scope = ? AND expires < ?", (scope, now))
                (held,) = db.execute(
                    "SELECT COUNT(*) FROM codat_in_flight WHERE scope = ?", (scope,)
                ).fetchone()
                if held < limit:
                    db.execute("INSERT INTO codat_in_flight VALUES (?, ?, ?)", (scope, holder, now + ttl))
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        return holder if held < limit else None

    def drop_lease(self, scope: str, holder: str) -> None:
        db = self._ready()
        with self._lock:
            db.execute("DELETE FROM codat_in_flight WHERE holder = ?", (holder,))

    def read_quota(self) -> Quota | None:
        db = self._ready()
        with self._lock:
            row = db.execute("SELECT quota FROM codat_quota WHERE budget = ?", (self._name,)).fetchone()
        return Quota(**json.loads(row[0])) if row else None

    def write_quota(self, quota: Quota) -> None:
        db = self._ready()
        with self._lock:
            db.execute(
                "INSERT INTO codat_quota VALUES (?, ?) ON CONFLICT (budget) DO UPDATE SET quota = excluded.quota",
                (self._name, json.dumps(asdict(quota))),
            )

    def close(self) -> None:
        with self._lock:
            self._close()


_MEMORY: dict[str, MemoryStore] = {}
_MEMORY_LOCK = threading.Lock()


def open_store(url: str, key: str) -> Any:
    """The store that ``url`` names, holding the budget ``key``; nothing is read or written yet.

    ``memory`` or ``memory://name`` (stores of one name are one store in this process), ``sqlite:///path``,
    ``redis://host:port/db`` (or ``rediss://``).
    """
    scheme, _, rest = url.partition("://")
    scheme = scheme.lower()
    if scheme == "memory":
        with _MEMORY_LOCK:
            return _MEMORY.setdefault(f"{rest}|{key}", MemoryStore(key))
    if scheme == "sqlite":
        return SQLiteStore(rest[1:] if rest.startswith("/") else rest, key)
    if scheme in ("redis", "rediss"):
        from airflow_provider_codat.budget.redis_store import RedisStore

        return RedisStore(url, key)
    raise CodatValidationError(
        f"Unknown request budget store {url_without_credentials(url)}: use sqlite:///path, redis://... or memory."
    )
