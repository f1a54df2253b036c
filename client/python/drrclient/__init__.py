"""Python client of drrserve: upload CT volumes, render DRRs into numpy arrays.

Its protobuf and gRPC code, generated from proto/drr/v1, lives in ``drrclient._proto``: built
into the package when it is installed, generated in a checkout by ``scripts/setup.sh``
(``client/python/gen_stubs.py``).
"""

from drrclient.client import Client, FrameError, Gradients, Jacobians, Losses, RenderFrame
from drrclient.errors import (
    Cancelled,
    DeadlineExceeded,
    DrrError,
    FailedPrecondition,
    InvalidRequest,
    NotFound,
    Overloaded,
    PermissionDenied,
    TargetNotFound,
    Unauthenticated,
    Unavailable,
    VolumeNotFound,
)
from drrclient.geometry import Intrinsics, Pose
from drrclient.options import Loss, RenderOptions
from drrclient.recovery import VOLUME_HEADER, RetryPolicy
from drrclient.volume import load_nifti, load_volume, volume_id

__all__ = [
    "Cancelled",
    "Client",
    "DeadlineExceeded",
    "DrrError",
    "FailedPrecondition",
    "FrameError",
    "Gradients",
    "Intrinsics",
    "InvalidRequest",
    "Jacobians",
    "Loss",
    "Losses",
    "NotFound",
    "Overloaded",
    "PermissionDenied",
    "Pose",
    "RenderFrame",
    "RenderOptions",
    "RetryPolicy",
    "TargetNotFound",
    "Unauthenticated",
    "Unavailable",
    "VOLUME_HEADER",
    "VolumeNotFound",
    "load_nifti",
    "load_volume",
    "volume_id",
]
