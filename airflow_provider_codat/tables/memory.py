"""The merge's memory: Arrow on the C library's ``malloc`` while a merge runs, and what the reading freed handed
back to the system before delta-rs's query runs.

Arrow's default allocator (mimalloc) keeps the pages its threads freed for reuse, and ``release_unused`` frees
only the calling thread's: after reading a batch of runs (Arrow's JSON reader parses on every core), about
65 MiB stayed resident under delta-rs's query, which allocates from an allocator of its own (jemalloc) and
cannot reuse them. On ``malloc``, ``malloc_trim`` returns what every thread freed. Measured by
``bench/tables.py`` (README there).
"""

from __future__ import annotations

import ctypes
import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pyarrow as pa

_lock = threading.Lock()
_merging = 0  # merges running in this process (threads): the last one out puts the allocator back
_previous: pa.MemoryPool | None = None


@contextmanager
def arrow_on_malloc() -> Iterator[None]:
    """Arrow allocates from the C library's ``malloc`` inside the block (its default allocator again after)."""
    global _merging, _previous
    with _lock:
        if _merging == 0:
            _previous = pa.default_memory_pool()
            pa.set_memory_pool(pa.system_memory_pool())
        _merging += 1
    try:
        yield
    finally:
        with _lock:
            _merging -= 1
            if _merging == 0 and _previous is not None:
                pa.set_memory_pool(_previous)


def release_freed_memory() -> None:
    """Return the memory Arrow and ``malloc`` hold unused to the system (where the C library can)."""
    pa.default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``; ``None`` where the C library has none (macOS, musl)."""
    try:
        return ctypes.CDLL(None).malloc_trim  # the process's own symbols: the C library it runs on
    except (OSError, AttributeError, TypeError):
        return None
