"""Python client of drrserve: upload CT volumes, render DRRs into numpy arrays.

The generated drr.v1 stubs (package ``drr.v1``) must be importable; the
project's ``scripts/setup.sh`` generates them and puts them on the venv's path.
"""

from drrclient.client import Client, FrameError, RenderFrame
from drrclient.geometry import Intrinsics, Pose
from drrclient.options import Loss, RenderOptions
from drrclient.recovery import VOLUME_HEADER, RetryPolicy
from drrclient.volume import load_nifti, volume_id

__all__ = [
    "Client",
    "FrameError",
    "Intrinsics",
    "Loss",
    "Pose",
    "RenderFrame",
    "RenderOptions",
    "RetryPolicy",
    "VOLUME_HEADER",
    "load_nifti",
    "volume_id",
]
