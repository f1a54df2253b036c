"""2D/3D registration: Adam on a pose (rotation vector and translation, nanodrr's make_rt_inv
convention) to maximise a similarity (or minimise MSE) between the DRR and a target image. On
the server (register_on_server; register's default) the loop runs next to the renderer, with
coarse scales first, several starts at once and reduce-on-plateau; on the client each iteration
is one loss_and_grad call (a few hundred bytes each way)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

import numpy as np
import numpy.typing as npt

from drrclient._enums import pick
from drrclient._proto.drr.v1 import registrations_pb2, renderer_pb2
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


@dataclass(frozen=True)
class Optimizer:
    """How the server optimises the pose parameters: Adam on each start's rotation values and
    translation, the steps shrunk by ``plateau_factor`` after ``patience`` iterations without the
    best loss improving by ``tolerance``, the scale over after ``max_reductions`` reductions;
    ``stop_at`` ends the finest scale. A field left None takes the server's default
    (proto/drr/v1/registrations.proto)."""

    lr_rotation: float | None = None
    lr_translation: float | None = None
    iterations: int | None = None
    stop_at: float | None = None
    patience: int | None = None
    plateau_factor: float | None = None
    tolerance: float | None = None
    max_reductions: int | None = None

    def to_proto(self) -> registrations_pb2.Optimizer:
        return registrations_pb2.Optimizer(
            **{k: v for k, v in asdict(self).items() if v is not None})


@dataclass
class ServerRegistration:
    """What a registration on the server found: the best ``start`` at the finest scale, its
    ``pose`` (the start with the best parameters), ``loss`` and ``parameters`` (rotation values
    then translation); per iteration, the ``scales`` and every start's ``losses`` [iterations,
    starts]; why it stopped ("reached_stop_at", "plateau" or "iterations")."""

    start: int
    loss: float
    pose: Pose
    parameters: npt.NDArray[np.float64]
    iterations: int
    stopped_by: str
    scales: npt.NDArray[np.int32]
    losses: npt.NDArray[np.float64]


def _pose_from_proto(proto: renderer_pb2.ParameterizedPose, like: Pose) -> Pose:
    return replace(like, rotation=np.asarray(proto.rotation, dtype=np.float64),
                   translation=tuple(proto.translation))


def register_on_server(
        client: Client, volume_id: str, target_id: str, starts: Sequence[Pose],
        intrinsics: Intrinsics = Intrinsics(), loss: Loss = Loss(),
        options: RenderOptions = RenderOptions(), optimizer: Optimizer = Optimizer(),
        scales: Sequence[int] = (1,), priority: Literal["interactive", "batch"] = "batch",
        on_step: Callable[[int, int, npt.NDArray[np.float64], npt.NDArray[np.float64]], None]
        | None = None,
        timeout: float | None = None) -> ServerRegistration:
    """Registers the volume to the target on the server, next to its renderer: no round trip per
    iteration. Each iteration renders every start (Pose, all of one parameterization) as one
    batch; ``scales`` are detector downsampling factors, coarsest first (each dividing the
    height and width of ``intrinsics``, the target's size). ``on_step(iteration, scale, losses,
    best)`` hears the iterations as they come (the latest whenever the client is ready): every
    start's loss, and the best parameters of the scale so far.
    Cancelled by the deadline ``timeout`` (seconds), or by an exception from ``on_step``."""
    request = registrations_pb2.RegisterRequest(
        volume_id=volume_id, loss=loss.to_proto(target_id),
        starts=[start.to_proto().parameterized for start in starts],
        intrinsics=intrinsics.to_proto(), options=options.to_proto(),
        optimizer=optimizer.to_proto(), scales=list(scales),
        priority=pick(renderer_pb2.Priority.DESCRIPTOR, priority, "priority"))

    def heard(step: registrations_pb2.RegisterStep) -> None:
        if on_step is not None:
            on_step(step.iteration, step.scale, np.asarray(step.losses, dtype=np.float64),
                    np.asarray([*step.best_pose.rotation, *step.best_pose.translation]))

    result = client.run_registration(request, heard, timeout)
    return ServerRegistration(
        start=result.start, loss=result.loss,
        pose=_pose_from_proto(result.pose, starts[result.start]),
        parameters=np.asarray([*result.pose.rotation, *result.pose.translation]),
        iterations=result.iterations,
        stopped_by=registrations_pb2.RegisterStop.Name(result.stopped_by)
        .removeprefix("REGISTER_STOP_").lower(),
        scales=np.asarray([step.scale for step in result.trajectory], dtype=np.int32),
        losses=np.asarray([list(step.losses) for step in result.trajectory], dtype=np.float64)
        .reshape(len(result.trajectory), len(starts)))


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
             callback: Callable[[int, float, npt.NDArray[np.float64]], None] | None = None,
             on: Literal["server", "client"] = "server", scales: Sequence[int] = (1,),
             timeout: float | None = None) -> RegistrationResult:
    """Registers the volume to the target from the pose (rotation vector,
    translation) with Adam. Similarities are maximised, MSE minimised; stops after
    `iterations` (per scale) or once the similarity reaches `stop_at`.

    On the server (``on="server"``) the loop runs next to the renderer, coarse ``scales``
    first, and the result is the best pose met; ``callback(iteration, loss, parameters)`` then
    hears the iterations the server streams, with the best parameters so far, and ``timeout``
    (seconds; None for none) bounds the whole registration. On the client
    (``on="client"``) each iteration is one loss_and_grad call and the result is the last pose
    evaluated; ``scales`` must then be (1,)."""
    maximise = (loss.kind or "").lower() != "mse"
    if on == "server":
        start = Pose(rotation=np.asarray(rotation, float), translation=tuple(translation),
                     orientation=orientation, parameterization="so3_log")
        # No plateau: the steps the client loop would take.
        optimizer = Optimizer(lr_rotation=lr_rotation, lr_translation=lr_translation,
                              iterations=iterations, stop_at=stop_at if maximise else None,
                              patience=iterations)

        def heard(iteration: int, scale: int, losses: npt.NDArray[np.float64],
                  best: npt.NDArray[np.float64]) -> None:
            if callback:
                callback(iteration, float(losses[0]), best)

        found = register_on_server(client, volume_id, target_id, [start], intrinsics, loss,
                                   options, optimizer, scales, on_step=heard, timeout=timeout)
        return RegistrationResult(found.parameters[:3].copy(), found.parameters[3:].copy(),
                                  [float(v) for v in found.losses[:, 0]],
                                  found.stopped_by == "reached_stop_at")
    if tuple(scales) != (1,):
        raise ValueError("the client loop registers at full scale only: scales=(1,)")
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
