"""How a client rides out a replica that restarts or a volume that moved (behind a proxy that
routes by volume id): UNAVAILABLE, and calls the proxy cut, are retried with backoff; NOT_FOUND
for content the client uploaded is answered by uploading it again; and a broken stream resumes
from its first unanswered frame."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

import grpc

#: The metadata key a proxy routes by: every call that names a volume carries its id.
VOLUME_HEADER = "x-drr-volume-id"

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """UNAVAILABLE (a replica unreachable, restarting or draining) and a CANCELLED the client did
    not ask for (a proxy resets the calls of a replica that went away) are retried up to
    ``attempts`` calls in all, waiting ``initial_backoff`` seconds after the first failure and twice as long
    after each next one, at most ``max_backoff``. NOT_FOUND for a volume or target the client
    uploaded (and still holds) is answered by uploading it again, once per call."""

    attempts: int = 8
    initial_backoff: float = 0.1
    max_backoff: float = 2.0


class Backoff:
    """The waits of one call's retries under a RetryPolicy."""

    def __init__(self, policy: RetryPolicy):
        self._policy = policy
        self._failures = 0

    def wait_after(self, error: grpc.RpcError) -> bool:
        """Waits before the next attempt and returns True when ``error`` is worth another
        attempt; else returns False at once."""
        return self.wait_after_code(error.code())

    def wait_after_code(self, code: grpc.StatusCode) -> bool:
        """As wait_after, for a failure with ``code``."""
        delay = self.delay_after(code)
        if delay is None:
            return False
        time.sleep(delay)
        return True

    def delay_after(self, code: grpc.StatusCode) -> float | None:
        """Seconds to wait before the next attempt after a failure with ``code``, or None when
        it is not worth another: one is when attempts are left and it is UNAVAILABLE or a
        CANCELLED (a client never cancels a call it still waits for)."""
        if code not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
            return None
        self._failures += 1
        if self._failures >= self._policy.attempts:
            return None
        delay: float = self._policy.initial_backoff * 2 ** (self._failures - 1)
        return min(delay, self._policy.max_backoff)


def missing_content(code: grpc.StatusCode, message: str) -> str | None:
    """"volume" or "target" when a NOT_FOUND says which is not stored (docs/api.md), else None."""
    if code != grpc.StatusCode.NOT_FOUND:
        return None
    for kind in ("volume", "target"):
        if message.startswith(kind + " "):
            return kind
    return None


class SharedSource(Generic[T]):
    """The caller's requests, drawn by one stream call after another. A call draws them on a
    thread of gRPC's and remembers each in ``pending`` until it is answered; when the call breaks,
    resume() puts its unanswered requests back in front, and a request drawn for a call that has
    stopped meanwhile is kept for the next call, never lost nor sent twice on one call. Only one
    thread draws from the caller's iterator at a time, and no lock is held while it does (it may
    block until the caller has read an answer)."""

    def __init__(self, source: Iterator[T]):
        self._source = source
        self._changed = threading.Condition()
        self._kept: collections.deque[T] = collections.deque()
        self._drawing = False
        self._exhausted = False

    def take(self, stopped: threading.Event, pending: collections.deque[T]) -> T:
        """The next request for the call that ``stopped`` belongs to, appended to its
        ``pending``; StopIteration when the caller has no more or the call has stopped."""
        with self._changed:
            while True:
                if stopped.is_set():
                    raise StopIteration
                if self._kept:
                    item = self._kept.popleft()
                    pending.append(item)
                    return item
                if self._exhausted:
                    raise StopIteration
                if not self._drawing:
                    break
                self._changed.wait(0.1)
            self._drawing = True
        try:
            item = next(self._source)
        except BaseException as error:
            with self._changed:
                self._drawing = False
                self._exhausted = isinstance(error, StopIteration)
                self._changed.notify_all()
            raise
        with self._changed:
            self._drawing = False
            self._changed.notify_all()
            if stopped.is_set():
                self._kept.append(item)
                raise StopIteration
            pending.append(item)
            return item

    def resume(self, pending: collections.deque[T]) -> None:
        """Puts a stopped call's unanswered requests back, in order, ahead of the rest."""
        with self._changed:
            self._kept.extendleft(reversed(pending))
            pending.clear()
            self._changed.notify_all()


class Feeder(Generic[T]):
    """The request iterator of one stream call, drawing from a SharedSource until stop()."""

    def __init__(self, source: SharedSource[T], pending: collections.deque[T]):
        self._source = source
        self._pending = pending
        self._stopped = threading.Event()

    def __iter__(self) -> Feeder[T]:
        return self

    def __next__(self) -> T:
        return self._source.take(self._stopped, self._pending)

    def stop(self) -> None:
        """Draws nothing more for this call (returns at once)."""
        self._stopped.set()
