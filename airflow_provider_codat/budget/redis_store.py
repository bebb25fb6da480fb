"""The request budget in Redis: every machine that reaches the server shares it.

Redis forgets its Lua scripts on a restart, a failover or ``SCRIPT FLUSH``. ``pyrate-limiter``'s ``RedisBucket``
loads its script once and then only calls ``EVALSHA`` (PyrateLimiter issue #182), so here each script the
budget runs is a redis-py :class:`~redis.commands.core.Script`, which loads itself again on ``NOSCRIPT``.

A restarted Redis has also forgotten the last minute's requests. The bucket's script therefore first looks for
the key that says when this budget's store was found empty; a store without it is new or emptied, and no token
is given until one 5-second slice after that moment (see :mod:`.request_budget` for why that is enough).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict
from typing import Any

from pyrate_limiter import Rate, RedisBucket
from pyrate_limiter.buckets.redis_bucket import LuaScript

from airflow_provider_codat.budget.outage import StoreWait
from airflow_provider_codat.budget.quota import Quota, digest
from airflow_provider_codat.errors import CodatValidationError

CONNECT_TIMEOUT = 5.0  # seconds: a Redis that is unreachable fails a look quickly; the budget then waits
REPLY_TIMEOUT = 10.0

# Before pyrate-limiter's check-and-insert: KEYS[2] holds when the store was found empty (set now if missing);
# within ARGV[#ARGV] ms of it, answer as the first rate (the 5-second slice) would with its oldest entry at
# that moment, so that the limiter waits out the rest of the slice.
_FOUND_EMPTY_FIRST = """
local found_empty = redis.call('GET', KEYS[2])
if not found_empty then
  found_empty = ARGV[1]
  redis.call('SET', KEYS[2], found_empty)
end
if tonumber(ARGV[1]) < tonumber(found_empty) + tonumber(ARGV[#ARGV]) then
  return {0, tonumber(found_empty)}
end
"""

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


class _RequestLog:
    """What ``RedisBucket`` is given as its client: the store's client, except that the bucket's one
    ``EVALSHA`` runs the store's own script (re-loaded on ``NOSCRIPT``, the found-empty check first).

    :param client: the store's ``redis.Redis``.
    :param script: the registered script.
    :param found_empty_key: the key holding when the store was found empty.
    :param pause_ms: how long after that no token is given.
    """

    def __init__(self, *, client: Any, script: Any, found_empty_key: str, pause_ms: int) -> None:
        self._client = client
        self._script = script
        self._found_empty_key = found_empty_key
        self._pause_ms = pause_ms

    def evalsha(self, _sha: str, _numkeys: int, bucket_key: str, *args: Any) -> Any:
        return self._script(keys=[bucket_key, self._found_empty_key], args=[*args, self._pause_ms])

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def _redis_module() -> Any:
    try:
        import redis
    except ImportError:
        raise CodatValidationError(
            "A redis:// request budget store needs the `redis` package: pip install "
            "'airflow-provider-codat[stack]' (or redis)."
        ) from None
    return redis


class RedisStore:
    """A budget in Redis. Nothing is sent to Redis until the budget is first used, so a process starts while
    its Redis is down and waits for it like any other call.

    :param url: ``redis://`` or ``rediss://`` (its query may set redis-py's options, e.g. ``socket_timeout``).
    :param key: the budget's name.
    """

    def __init__(self, url: str, key: str) -> None:
        redis = _redis_module()
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.key = key
        self.generation = 1  # the bucket never needs rebuilding: the script copes with an emptied store
        self._prefix = f"codat-budget:{digest(key)}"
        # redis-py's own retries would wait without regard to the call's deadline: the budget waits itself.
        self._redis = redis.Redis.from_url(
            url,
            socket_connect_timeout=CONNECT_TIMEOUT,
            socket_timeout=REPLY_TIMEOUT,
            retry=Retry(NoBackoff(), 0),
        )
        self._take = self._redis.register_script(_TAKE_LEASE)
        self._put = self._redis.register_script(_FOUND_EMPTY_FIRST + LuaScript.PUT_ITEM)
        errors = redis.exceptions
        self.wait = StoreWait(
            kind="Redis",
            url=url,
            faults=(
                errors.ConnectionError,
                errors.TimeoutError,
                errors.ReadOnlyError,
                errors.BusyLoadingError,
            ),
            advice=(
                "that the Redis server is running and reachable from this machine (host, port, password, TLS), "
                "and that the URL names a primary, not a read-only replica"
            ),
        )

    def bucket(self, rates: list[Rate]) -> RedisBucket:
        """The request log, counted per rate; ``rates[0]`` is the slice that a found-empty store waits out."""
        log = _RequestLog(
            client=self._redis,
            script=self._put,
            found_empty_key=f"{self._prefix}:found-empty",
            pause_ms=rates[0].interval,
        )
        return RedisBucket(rates, log, f"{self._prefix}:requests", self._put.sha)

    def found_empty_at(self) -> float | None:
        """``None``: the bucket's script itself waits out a found-empty store."""
        return None

    def discard(self) -> None:
        """Nothing to forget after a fault: redis-py drops a broken connection itself."""

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
