"""Where a request budget lives, so that every process spending it sees the same numbers.

Each store keeps three things under the budget's key:

* the log of recent requests that ``pyrate-limiter`` counts per window (its own SQLite, Redis or in-memory
  bucket);
* leases on requests in flight per company: a counting semaphore across processes. Every lease expires, so a
  killed process cannot hold a company's places for ever. ``pyrate-limiter`` limits rates, not concurrency,
  and no well-kept library offers a cross-process semaphore over SQLite and Redis, hence these few statements;
* the daily quota as Codat last reported it (``X-Rate-Limit-*``).

``sqlite:///path`` serves every process of one machine with no server; ``redis://`` every machine that reaches
the Redis; ``memory`` one process (tests, or a single-process deployment).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pyrate_limiter import InMemoryBucket, Rate, RedisBucket, SQLiteBucket
from pyrate_limiter.abstracts import AbstractBucket

from airflow_provider_codat.errors import CodatValidationError


@dataclass(frozen=True)
class Quota:
    """Codat's daily quota as one response reported it.

    :param limit: ``X-Rate-Limit-Limit`` (``None`` when absent).
    :param remaining: ``X-Rate-Limit-Remaining``.
    :param resets_at: epoch seconds of ``X-Rate-Limit-Reset`` (``None`` when absent or unreadable).
    :param observed_at: epoch seconds when the response came.
    """

    limit: int | None
    remaining: int
    resets_at: float | None
    observed_at: float

    def current(self, now: float) -> bool:
        """Whether it still describes the quota: its reset has not passed yet."""
        return self.resets_at is None or now < self.resets_at


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:16]


class MemoryStore:
    """A budget for this process only."""

    def __init__(self, key: str) -> None:
        self.key = key
        self._lock = threading.Lock()
        self._leases: dict[str, dict[str, float]] = {}
        self._quota: Quota | None = None

    def bucket(self, rates: list[Rate]) -> AbstractBucket:
        return InMemoryBucket(rates)

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
    """A budget in one SQLite file: every process of the machine that opens it shares it (no server)."""

    def __init__(self, path: str, key: str) -> None:
        self.key = key
        self.path = path
        self._digest = _digest(key)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        # Autocommit, each write in its own IMMEDIATE transaction; a busy file is waited for, not an error.
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS codat_in_flight (scope TEXT, holder TEXT PRIMARY KEY, expires REAL)"
            )
            self._db.execute("CREATE INDEX IF NOT EXISTS codat_in_flight_scope ON codat_in_flight (scope)")
            self._db.execute("CREATE TABLE IF NOT EXISTS codat_quota (budget TEXT PRIMARY KEY, quota TEXT)")

    def bucket(self, rates: list[Rate]) -> AbstractBucket:
        return SQLiteBucket.init_from_file(
            rates, table=f"codat_requests_{self._digest}", db_path=self.path, use_file_lock=True
        )

    def take_lease(self, scope: str, limit: int, ttl: float) -> str | None:
        now, holder, scope = time.time(), uuid.uuid4().hex, f"{self._digest}:{scope}"
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("DELETE FROM codat_in_flight WHERE scope = ? AND expires < ?", (scope, now))
                (held,) = self._db.execute(
                    "SELECT COUNT(*) FROM codat_in_flight WHERE scope = ?", (scope,)
                ).fetchone()
                if held < limit:
                    self._db.execute(
                        "INSERT INTO codat_in_flight VALUES (?, ?, ?)", (scope, holder, now + ttl)
                    )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return holder if held < limit else None

    def drop_lease(self, scope: str, holder: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM codat_in_flight WHERE holder = ?", (holder,))

    def read_quota(self) -> Quota | None:
        with self._lock:
            row = self._db.execute(
                "SELECT quota FROM codat_quota WHERE budget = ?", (self._digest,)
            ).fetchone()
        return Quota(**json.loads(row[0])) if row else None

    def write_quota(self, quota: Quota) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO codat_quota VALUES (?, ?) ON CONFLICT (budget) DO UPDATE SET quota = excluded.quota",
                (self._digest, json.dumps(asdict(quota))),
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()


# Take a lease when fewer than ARGV[2] unexpired ones are held: one atomic step in Redis.
_TAKE_LEASE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  return 1
end
return 0
"""


class RedisStore:
    """A budget in Redis: every machine that reaches the server shares it."""

    def __init__(self, url: str, key: str) -> None:
        try:
            import redis
        except ImportError:
            raise CodatValidationError(
                "A redis:// request budget store needs the `redis` package: pip install "
                "'airflow-provider-codat[stack]' (or redis)."
            ) from None
        self.key = key
        self._prefix = f"codat-budget:{_digest(key)}"
        self._redis = redis.Redis.from_url(url)
        self._take = self._redis.register_script(_TAKE_LEASE)

    def bucket(self, rates: list[Rate]) -> AbstractBucket:
        return RedisBucket.init(rates, self._redis, f"{self._prefix}:requests")

    def take_lease(self, scope: str, limit: int, ttl: float) -> str | None:
        now, holder = time.time(), uuid.uuid4().hex
        args = [now, limit, now + ttl, holder, int(ttl * 1000) + 1000]
        taken = self._take(keys=[f"{self._prefix}:in-flight:{scope}"], args=args)
        return holder if int(taken) == 1 else None

    def drop_lease(self, scope: str, holder: str) -> None:
        self._redis.zrem(f"{self._prefix}:in-flight:{scope}", holder)

    def read_quota(self) -> Quota | None:
        raw = self._redis.get(f"{self._prefix}:quota")
        return Quota(**json.loads(raw)) if raw else None

    def write_quota(self, quota: Quota) -> None:
        self._redis.set(f"{self._prefix}:quota", json.dumps(asdict(quota)), ex=2 * 86400)

    def close(self) -> None:
        self._redis.close()


_MEMORY: dict[str, MemoryStore] = {}
_MEMORY_LOCK = threading.Lock()


def open_store(url: str, key: str) -> Any:
    """The store that ``url`` names, holding the budget ``key``.

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
        return RedisStore(url, key)
    raise CodatValidationError(
        f"Unknown request budget store {url!r}: use sqlite:///path, redis://... or memory."
    )
