"""2D/3D registration through the server: Adam on a pose (rotation vector
and translation, nanodrr's make_rt_inv convention) to maximise a similarity
(or minimise MSE) between the DRR and a target image. Each iteration is one
loss_and_grad call: a few hundred bytes each way."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import numpy.typing as npt

from drrclient.client import Client
from drrclient.geometry import Intrinsics, Pose, Vector
from drrclient.options import Loss, RenderOptions


def euler_to_rotation_vector(angles: Vector, convention: str = "ZXY",
                             degrees: bool = False) -> npt.NDArray[np.float64]:
    """The rotation vector (so3_log) of intrinsic Euler angles."""
    radians = np.deg2rad(angles) if degrees else np.asarray(angles, dtype=np.float64)
    matrix = np.eye(3)
    for axis, angle in zip(convention.lower(), radians):
        c, s = np.cos(angle), np.sin(angle)
        i = "xyz".index(axis)
        r = np.eye(3)
        j, k = [a for a in range(3) if a != i]
        r[j, j], r[j, k], r[k, j], r[k, k] = c, -s, s, c
        if i == 1:  # rotation about y: the sign of sin flips in the (z, x) plane
            r[j, k], r[k, j] = s, -s
        matrix = matrix @ r
    angle = float(np.arccos(np.clip((np.trace(matrix) - 1) / 2, -1.0, 1.0)))
    if angle < 1e-12:
        return np.zeros(3)
    unit_axis: npt.NDArray[np.float64] = np.array(
        [matrix[2, 1] - matrix[1, 2], matrix[0, 2] - matrix[2, 0],
         matrix[1, 0] - matrix[0, 1]]) / (2 * np.sin(angle))
    return unit_axis * angle


class Adam:
    """Adam (Kingma & Ba) for a parameter vector with per-entry learning rates."""

    def __init__(self, learning_rates: npt.ArrayLike, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        self.lr = np.asarray(learning_rates, dtype=np.float64)
        self.betas, self.eps = betas, eps
        self.m = np.zeros_like(self.lr)
        self.v = np.zeros_like(self.lr)
        self.t = 0

    def step(self, params: npt.NDArray[np.float64],
             gradient: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """The parameters after one descent step along `gradient`."""
        self.t += 1
        b1, b2 = self.betas
        self.m = b1 * self.m + (1 - b1) * gradient
        self.v = b2 * self.v + (1 - b2) * gradient * gradient
        m_hat = self.m / (1 - b1 ** self.t)
        v_hat = self.v / (1 - b2 ** self.t)
        return params - self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


@dataclass
class RegistrationResult:
    rotation: npt.NDArray[np.float64]     # rotation vector (so3_log), radians
    translation: npt.NDArray[np.float64]  # mm, relative to the isocenter
    losses: list[float] = field(default_factory=list)
    converged: bool = False


def register(client: Client, volume_id: str, target_id: str, rotation: Vector,
             translation: Vector, intrinsics: Intrinsics = Intrinsics(),
             loss: Loss = Loss(), options: RenderOptions = RenderOptions(),
             orientation: str | None = "AP", lr_rotation: float = 5e-2,
             lr_translation: float = 1e1, iterations: int = 100,
             stop_at: float | None = 0.999,
             callback: Callable[[int, float, npt.NDArray[np.float64]], None] | None = None
             ) -> RegistrationResult:
    """Registers the volume to the target from the pose (rotation vector,
    translation). Similarities are maximised, MSE minimised; stops after
    `iterations` or once the similarity reaches `stop_at`."""
    maximise = (loss.kind or "").lower() != "mse"
    params = np.concatenate([np.asarray(rotation, float), np.asarray(translation, float)])
    adam = Adam(np.array([lr_rotation] * 3 + [lr_translation] * 3))
    result = RegistrationResult(params[:3].copy(), params[3:].copy())
    for iteration in range(iterations):
        pose = Pose(rotation=params[:3], translation=params[3:], orientation=orientation,
                    parameterization="so3_log")
        losses, gradients, _ = client.loss_and_grad(volume_id, target_id, [pose], intrinsics,
                                                    loss, options)
        value = float(losses[0])
        result.losses.append(value)
        result.rotation, result.translation = params[:3].copy(), params[3:].copy()
        if callback:
            callback(iteration, value, params.copy())
        if stop_at is not None and maximise and value >= stop_at:
            result.converged = True
            break
        params = adam.step(params, -gradients[0] if maximise else gradients[0])
    return result
