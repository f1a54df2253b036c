"""Cameras and poses in nanodrr's conventions (design.md section 1)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Union

import numpy as np
import numpy.typing as npt

from drr.v1 import renderer_pb2

# A 3-vector (translation, isocenter) as a sequence or an array.
Vector = Union[Sequence[float], npt.NDArray[Any]]

_ORIENTATIONS = {
    "AP": renderer_pb2.ORIENTATION_AP,
    "PA": renderer_pb2.ORIENTATION_PA,
    None: renderer_pb2.ORIENTATION_NONE,
    "none": renderer_pb2.ORIENTATION_NONE,
}

_PARAMETERIZATIONS = {
    "euler": renderer_pb2.PARAMETERIZATION_EULER,
    "quaternion": renderer_pb2.PARAMETERIZATION_QUATERNION,
    "quaternion_adjugate": renderer_pb2.PARAMETERIZATION_QUATERNION_ADJUGATE,
    "rotation_9d": renderer_pb2.PARAMETERIZATION_ROTATION_9D,
    "so3_log": renderer_pb2.PARAMETERIZATION_SO3_LOG,
    "se3_log": renderer_pb2.PARAMETERIZATION_SE3_LOG,
    "matrix": renderer_pb2.PARAMETERIZATION_MATRIX,
}


@dataclass(frozen=True)
class Intrinsics:
    """Detector intrinsics as nanodrr's ``make_k_inv`` takes them (mm, pixels).

    The defaults are the reference camera of nanodrr's benchmark.
    """

    sdd: float = 1020.0
    delx: float = 2.0
    dely: float = 2.0
    x0: float = 0.0
    y0: float = 0.0
    height: int = 200
    width: int = 200
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
    matrix (9, a rotation matrix row-major).
    """

    rotation: npt.ArrayLike = (0.0, 0.0, 0.0)
    translation: Vector = (0.0, 850.0, 0.0)
    orientation: str | None = "AP"
    parameterization: str = "euler"
    convention: str = "ZXY"
    degrees: bool = True
    isocenter: Vector | None = None

    def to_proto(self) -> renderer_pb2.Pose:
        if self.orientation not in _ORIENTATIONS:
            raise ValueError(f"orientation must be 'AP', 'PA' or None, not {self.orientation!r}")
        if self.parameterization not in _PARAMETERIZATIONS:
            raise ValueError(f"parameterization must be one of {sorted(_PARAMETERIZATIONS)}, "
                             f"not {self.parameterization!r}")
        rotation = np.asarray(self.rotation, dtype=np.float64).ravel()
        return renderer_pb2.Pose(parameterized=renderer_pb2.ParameterizedPose(
            parameterization=_PARAMETERIZATIONS[self.parameterization],
            convention=self.convention, radians=not self.degrees,
            rotation=rotation.tolist(),
            translation=[float(v) for v in self.translation],
            orientation=_ORIENTATIONS[self.orientation],
            isocenter=[] if self.isocenter is None else [float(v) for v in self.isocenter]))


def pose_to_proto(pose: Pose | npt.ArrayLike) -> renderer_pb2.Pose:
    """A wire pose from a Pose or a 4x4 camera->world matrix."""
    if isinstance(pose, Pose):
        return pose.to_proto()
    matrix = np.asarray(pose, dtype=np.float64)
    if matrix.shape != (4, 4):
        raise ValueError(f"a matrix pose must be 4x4 camera->world, got shape {matrix.shape}")
    return renderer_pb2.Pose(rt_inv=renderer_pb2.Matrix4(values=matrix.ravel().tolist()))
