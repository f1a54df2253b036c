"""Cameras and poses in nanodrr's conventions (design.md section 1)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Union

import numpy as np
import numpy.typing as npt

from drrclient._arrays import as_array
from drrclient._enums import pick
from drrclient._proto.drr.v1 import renderer_pb2

# A 3-vector (translation, isocenter) as a sequence or an array.
Vector = Union[Sequence[float], npt.NDArray[Any]]

@dataclass(frozen=True)
class Intrinsics:
    """Detector intrinsics as nanodrr's ``make_k_inv`` takes them (mm, pixels).

    A field left None is left out of the request, and the server takes its
    default: the reference camera of nanodrr's benchmark (the server's
    defaults/defaults.h).
    """

    sdd: float | None = None
    delx: float | None = None
    dely: float | None = None
    x0: float | None = None
    y0: float | None = None
    height: int | None = None
    width: int | None = None
    orthographic: bool = False

    def to_proto(self) -> renderer_pb2.Intrinsics:
        return renderer_pb2.Intrinsics(
            sdd=self.sdd, delx=self.delx, dely=self.dely, x0=self.x0, y0=self.y0,
            height=self.height, width=self.width, orthographic=self.orthographic)


@dataclass(frozen=True)
class Pose:
    """A pose as nanodrr's ``convert`` / ``make_rt_inv`` build it: rotation
    parameters, then a camera centre relative to the isocenter (the volume
    centre unless given), then the AP/PA reorientation.

    ``parameterization`` is one of euler (with ``convention`` and ``degrees``),
    quaternion (x, y, z, w), quaternion_adjugate (10), rotation_9d (9),
    so3_log (3), se3_log (3; ``translation`` is then the log-translation) and
    matrix (9, a rotation matrix row-major). A field left None takes the
    server's default: euler, ZXY, the identity rotation, the reference pose's
    translation. ``orientation``: "AP", "PA" or None (no reorientation).
    """

    rotation: npt.ArrayLike | None = None
    translation: Vector | None = None
    orientation: str | None = "AP"
    parameterization: str | None = None
    convention: str | None = None
    degrees: bool = True
    isocenter: Vector | None = None

    def to_proto(self) -> renderer_pb2.Pose:
        return renderer_pb2.Pose(parameterized=renderer_pb2.ParameterizedPose(
            parameterization=pick(renderer_pb2.Parameterization.DESCRIPTOR, self.parameterization,
                                  "parameterization"),
            convention=self.convention, radians=not self.degrees,
            rotation=([] if self.rotation is None
                      else as_array(self.rotation, dtype=np.float64).ravel().tolist()),
            translation=([] if self.translation is None
                         else as_array(self.translation, dtype=np.float64).ravel().tolist()),
            orientation=pick(renderer_pb2.Orientation.DESCRIPTOR,
                             "none" if self.orientation is None else self.orientation, "orientation"),
            isocenter=([] if self.isocenter is None
                       else as_array(self.isocenter, dtype=np.float64).ravel().tolist())))


def pose_to_proto(pose: Pose | npt.ArrayLike) -> renderer_pb2.Pose:
    """A wire pose from a Pose or a 4x4 camera->world matrix."""
    if isinstance(pose, Pose):
        return pose.to_proto()
    matrix = as_array(pose, dtype=np.float64)
    if matrix.shape != (4, 4):
        raise ValueError(f"a matrix pose must be 4x4 camera->world, got shape {matrix.shape}")
    return renderer_pb2.Pose(rt_inv=renderer_pb2.Matrix4(values=matrix.ravel().tolist()))
