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

    attempts: int = 6
    initial_backoff: float = 0.1
    max_backoff: float = 2.0


class Backoff:
    """The waits of one call's retries under a RetryPolicy."""

    def __init__(self, policy: RetryPolicy):
        self._policy = policy
        self._failures = 0

    def wait_after(self, error: grpc.RpcError) -> bool:
        """Waits before the next attempt and returns True when ``error`` is worth another
        attempt (attempts left, and UNAVAILABLE or a CANCELLED: this client never cancels a call
        it still waits for); else returns False at once."""
        if error.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
            return False
        self._failures += 1
        if self._failures >= self._policy.attempts:
            return False
        delay = self._policy.initial_backoff * 2 ** (self._failures - 1)
        time.sleep(min(delay, self._policy.max_backoff))
        return True


def missing_content(code: grpc.StatusCode, message: str) -> str | None:
    """"volume" or "target" when a NOT_FOUND says which is not stored (docs/api.md), else None."""
    if code != grpc.StatusCode.NOT_FOUND:
        return None
    for kind in ("volume", "target"):
        if message.startswith(kind + " "):
            return kind
    return None


class Feeder(Generic[T]):
    """The requests of one stream call, drawn from ``source`` and remembered in ``pending``
    until answered (the caller pops them as answers arrive, in order). stop() ends the call's
    requests, so that a new call can take over ``source`` and the unanswered ones."""

    def __init__(self, pending: collections.deque[T], source: Iterator[T]):
        self._pending = pending
        self._source = source
        self._lock = threading.Lock()
        self._stopped = False

    def __iter__(self) -> Feeder[T]:
        return self

    def __next__(self) -> T:
        with self._lock:  # (gRPC draws requests on a thread of its own)
            if self._stopped:
                raise StopIteration
            item = next(self._source)
            self._pending.append(item)
            return item

    def stop(self) -> None:
        """No request is drawn from now on (waits for one being drawn)."""
        with self._lock:
            self._stopped = True
