"""Seeded randomness for record generation: deterministic ids, names, amounts and dates."""

from __future__ import annotations

import functools
import random
from datetime import datetime, timedelta

from airflow_provider_codat.simulator.clock import fmt_local

CURRENCIES = ("GBP", "USD", "EUR")
WORDS = (
    "Acme",
    "Northwind",
    "Bluebell",
    "Harbour",
    "Granite",
    "Juniper",
    "Kestrel",
    "Lantern",
    "Meadow",
    "Orchard",
    "Pioneer",
    "Quarry",
    "Riverside",
    "Summit",
    "Thistle",
    "Willow",
    "Copper",
    "Falcon",
)
_SUFFIXES = ("Ltd", "LLC", "& Co", "Group", "Trading", "Supplies", "Studio", "Partners")


def new_id(rng: random.Random) -> str:
    """A version-4 UUID drawn from ``rng``: deterministic, unlike ``uuid4``."""
    digits = f"{rng.getrandbits(128):032x}"
    variant = "89ab"[int(digits[16], 16) & 3]
    return f"{digits[:8]}-{digits[8:12]}-4{digits[13:16]}-{variant}{digits[17:20]}-{digits[20:]}"


def pick(rng: random.Random, values):
    # rng.random() is C code; choice()/randint() take slower Python paths, which shows at 100k records.
    return values[int(rng.random() * len(values))]


def integer(rng: random.Random, low: int, high: int) -> int:
    return low + int(rng.random() * (high - low + 1))


def collection_rng(seed: int, *parts: str) -> random.Random:
    return random.Random(f"{seed}|" + "|".join(parts))


def company_name(rng: random.Random) -> str:
    return f"{pick(rng, WORDS)} {pick(rng, WORDS)} {pick(rng, _SUFFIXES)}"


def amount(rng: random.Random, low: float = 10, high: float = 5000) -> float:
    return round(rng.uniform(low, high), 2)


@functools.lru_cache(maxsize=64)
def days_before(anchor: datetime, days: int) -> tuple[str, ...]:
    midnight = anchor.replace(hour=0, minute=0, second=0, microsecond=0)
    return tuple(fmt_local(midnight - timedelta(days=back)) for back in range(days + 1))


def day(rng: random.Random, anchor: datetime, days: int = 365) -> str:
    return pick(rng, days_before(anchor, days))
