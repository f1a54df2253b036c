"""What drrclient raises when the server (or the way to it) refuses a call: one class per kind of
refusal, each carrying the server's message. Every one is a grpc.RpcError too, with gRPC's
``code()`` and ``details()``, so code written against raw gRPC errors keeps working."""

from __future__ import annotations

import grpc


class DrrError(grpc.RpcError):
    """A call drrserve (or the network) refused: ``status`` (a grpc.StatusCode) and the server's
    ``message``."""

    def __init__(self, status: grpc.StatusCode, message: str):
        super().__init__(f"{status.name}: {message}")
        self.status = status
        self.message = message

    def __reduce__(self) -> tuple[type[DrrError], tuple[grpc.StatusCode, str]]:
        # (Rebuilt from status and message: picklable across processes.)
        return type(self), (self.status, self.message)

    def code(self) -> grpc.StatusCode:
        return self.status

    def details(self) -> str:
        return self.message


class NotFound(DrrError):
    """NOT_FOUND: an id the server does not hold (or, under tokens, one of another tenant)."""


class VolumeNotFound(NotFound):
    """NOT_FOUND for a volume; the message names its id."""


class TargetNotFound(NotFound):
    """NOT_FOUND for a loss target; the message names its id."""


class InvalidRequest(DrrError):
    """INVALID_ARGUMENT: a malformed request; the message names the field."""


class Overloaded(DrrError):
    """RESOURCE_EXHAUSTED: over one of the server's limits, its memory budget, a full queue or a
    tenant's quota; the message says which. Often worth retrying later."""


class Unavailable(DrrError):
    """UNAVAILABLE after the client's retries: the server is unreachable or draining."""


class DeadlineExceeded(DrrError):
    """DEADLINE_EXCEEDED: the call's deadline passed before it was answered."""


class Cancelled(DrrError):
    """CANCELLED: the call was cancelled (by the caller, or cut on the way)."""


class Unauthenticated(DrrError):
    """UNAUTHENTICATED: no valid token for a server started with --tokens."""


class PermissionDenied(DrrError):
    """PERMISSION_DENIED: the caller's tenant may not do this."""


class FailedPrecondition(DrrError):
    """FAILED_PRECONDITION: a call routed by another volume than it names, or without the
    x-drr-volume-id header where the server requires it."""


_BY_CODE: dict[grpc.StatusCode, type[DrrError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidRequest,
    grpc.StatusCode.OUT_OF_RANGE: InvalidRequest,
    grpc.StatusCode.RESOURCE_EXHAUSTED: Overloaded,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.CANCELLED: Cancelled,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
}


def error_for(status: grpc.StatusCode, message: str) -> DrrError:
    """The error of a call refused with ``status`` and ``message``."""
    if status == grpc.StatusCode.NOT_FOUND:
        kind = (VolumeNotFound if message.startswith("volume ")
                else TargetNotFound if message.startswith("target ") else NotFound)
        return kind(status, message)
    return _BY_CODE.get(status, DrrError)(status, message)


def typed(error: grpc.RpcError) -> DrrError:
    """``error`` as the DrrError of its code (itself when it is one already)."""
    if isinstance(error, DrrError):
        return error
    status = error.code() if callable(getattr(error, "code", None)) else grpc.StatusCode.UNKNOWN
    message = error.details() if callable(getattr(error, "details", None)) else str(error)
    return error_for(status, message or "")
