"""drrserve as a differentiable PyTorch op (torch is optional for the rest of
the package): images = render(poses) on the server, and loss.backward()
computes the pose gradients on the server too.

    from drrclient.torch import DRR
    drr = DRR(client, volume_id, Intrinsics(), parameterization="so3_log")
    rotation = torch.zeros(1, 3, requires_grad=True)
    translation = torch.tensor([[0.0, 850.0, 0.0]], requires_grad=True)
    images = drr(rotation, translation)          # [B, C, H, W] float32
    loss = -ncc(images, target); loss.backward()  # rotation.grad, translation.grad
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypedDict

import numpy as np
import torch

from drrclient.client import Client
from drrclient.geometry import Intrinsics, Pose, Vector
from drrclient.options import RenderOptions


class _PoseFields(TypedDict):
    """The Pose fields other than rotation and translation."""

    parameterization: str
    convention: str | None
    degrees: bool
    orientation: str | None
    isocenter: Vector | None


class _Render(torch.autograd.Function):
    """Forward renders on the server; backward sends dL/dI and gets dL/dθ."""

    @staticmethod
    def forward(ctx: Any, rotation: torch.Tensor, translation: torch.Tensor,
                drr: DRR) -> torch.Tensor:
        poses = drr.poses(rotation, translation)
        images = drr.client.render(drr.volume_id, poses, drr.intrinsics, drr.options)
        ctx.drr, ctx.poses = drr, poses
        return torch.from_numpy(images.copy()).to(rotation.device)

    @staticmethod
    def backward(ctx: Any, grad_images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None]:
        drr: DRR = ctx.drr
        upstream = grad_images.detach().cpu().numpy().astype(np.float32)
        _, parameter_gradients, _ = drr.client.render_with_gradients(
            drr.volume_id, ctx.poses, upstream, drr.intrinsics, drr.options)
        gradients = torch.from_numpy(np.stack(parameter_gradients)).to(grad_images.device)
        k = drr.rotation_size
        return gradients[:, :k].float(), gradients[:, k:].float(), None


class DRR(torch.nn.Module):
    """Renders a batch of poses given as (rotation [B, k], translation [B, 3])
    tensors in one parameterization; differentiable with respect to both."""

    def __init__(self, client: Client, volume_id: str,
                 intrinsics: Intrinsics | Sequence[Intrinsics] = Intrinsics(),
                 parameterization: str = "euler", convention: str | None = None, degrees: bool = True,
                 orientation: str | None = "AP", isocenter: Vector | None = None,
                 options: RenderOptions = RenderOptions()) -> None:
        super().__init__()
        self.client, self.volume_id, self.intrinsics, self.options = (client, volume_id,
                                                                      intrinsics, options)
        self.pose_fields = _PoseFields(parameterization=parameterization, convention=convention,
                                       degrees=degrees, orientation=orientation, isocenter=isocenter)
        self.rotation_size = 0

    def poses(self, rotation: torch.Tensor, translation: torch.Tensor) -> list[Pose]:
        self.rotation_size = rotation.shape[1]
        rotations = rotation.detach().cpu().double().numpy()
        translations = translation.detach().cpu().double().numpy()
        return [Pose(rotation=r, translation=t, **self.pose_fields)
                for r, t in zip(rotations, translations)]

    def forward(self, rotation: torch.Tensor, translation: torch.Tensor) -> torch.Tensor:
        images: torch.Tensor = _Render.apply(rotation, translation, self)
        return images
