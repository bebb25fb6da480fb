"""Read pages ahead on a worker thread, so that the next request is in flight while this page is written.

The worker alone drives the page iterator (and so the hook's HTTP client) until the iterator ends; the caller
only takes pages from a short queue. Memory stays at ``depth`` pages.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
_END = object()


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class Prefetcher(Generic[T]):
    """Iterate over ``source`` on a worker thread, ``depth`` items ahead.

    Use as a context manager: leaving the block early stops the worker after its current item. An exception
    raised by ``source`` is raised again in the caller, at the position it happened.

    :param source: the iterable to read ahead (a page iterator).
    :param depth: how many items may wait in the queue.
    """

    def __init__(self, source: Iterable[T], depth: int = 2) -> None:
        self._source = source
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="codat-page-prefetch", daemon=True)
        self._started = False

    def __enter__(self) -> Prefetcher[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[T]:
        if not self._started:
            self._started = True
            self._thread.start()
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item  # type: ignore[misc]

    def close(self, timeout: float = 10.0) -> None:
        """Stop the worker and wait for it to finish the request it is making, ``timeout`` seconds at most.

        The wait is bounded because a request may be sleeping through retries; the worker is a daemon thread
        and stops by itself before its next request.
        """
        self._stop.set()
        if not self._started:
            return
        deadline = time.monotonic() + timeout
        while self._thread.is_alive() and time.monotonic() < deadline:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                self._thread.join(0.05)

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        iterator = iter(self._source)
        try:
            for item in iterator:
                if not self._put(item):
                    return
            self._put(_END)
        except BaseException as exc:  # handed to the caller, who raises it
            self._put(_Failure(exc))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
