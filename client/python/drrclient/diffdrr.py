"""DiffDRR's ``DRR``, rendered by drrserve: change one import (torch and diffdrr 0.6.1 needed).

    from diffdrr.drr import DRR                    # before
    from drrclient.diffdrr import DRR              # after: the server renders

    drr = DRR(subject, sdd=1020.0, height=200, delx=2.0)
    img = drr(rotation, translation, parameterization="euler_angles", convention="ZXY")
    loss = -ncc(img, target); loss.backward()       # rotation.grad, translation.grad

``DRR`` is a ``diffdrr.drr.DRR`` (the same constructor, detector, ``affine``,
``perspective_projection``, ``set_intrinsics_``, ``rescale_detector_``) whose ``forward`` renders
on the server: it returns what DiffDRR's does, [B, C, H, W] (or DiffDRR's [B, C, n] with
``reshape=False``), float64 for a float64 module and float32 otherwise, on the pose's device,
differentiable with respect to the pose (the server computes dL/d(camera->world) from the
upstream gradient; autograd takes it on through diffdrr.pose.convert to rotation and
translation). The server is ``connect()``'s (shared with drrclient.nanodrr), or the
``DRRSERVE_ADDRESS`` environment variable's (127.0.0.1:50051 by default), or the ``client``
passed to ``DRR``; ``options`` passes the render options that leave the images DiffDRR's
(``volume_storage``, ``image_dtype``).

What maps: DiffDRR's default renderer, Siddon (``mode="nearest"``, ``reducefn="sum"``), is the
exact radiological path, sum of mu * length over the voxels a ray crosses; drrserve's
``renderer="siddon"`` computes the same from the module's ``density`` (DiffDRR's own HU -> density
map) and its affine. ``voxel_shift`` (voxel k spans (k - s, k + 1 - s) in voxel coordinates) is
a shift of the uploaded affine. Every parameterization of diffdrr.pose.convert, or a
RigidTransform, works (the pose is made locally, as DiffDRR makes it); ``calibration`` (a
RigidTransform of [[delx, 0, 0, x0], [0, dely, 0, y0], [0, 0, sdd, 0], [0, 0, 0, 1]], one or one
per pose) sets the intrinsics; ``reverse_x_axis``, ``x0``/``y0``, ``dely``, ``width``,
``mask_to_channels`` (one channel per label 0 .. max of ``subject.mask``), ``p_subsample`` (the
detector's own random pixels, from the whole image rendered; also for batches and label
channels, where DiffDRR 0.6.1's own reshaping fails) and ``reshape`` are DiffDRR's.
``patch_size``, ``compile_renderer`` and ``checkpoint_gradients`` only save DiffDRR memory or time
and are accepted and ignored; so are Siddon's ``eps`` and ``stop_gradients_through_grid_sample``
(nearest values carry no pose gradient either way).

DiffDRR integrates the whole line through source and target, beyond the detector too (in its
tutorial's geometry the detector plane cuts the chest CT's table); drrserve integrates from the
source to the detector, so each pose's camera goes to the server scaled (sdd, delx, dely, x0, y0
times one factor, which leaves every pixel's ray where it is) until the volume lies between
source and detector. What lies behind the source, which DiffDRR integrates too, is not rendered.

Refused (ValueError naming the argument): ``renderer="trilinear"`` (DiffDRR's Trilinear samples
``n_points`` over one alpha range shared by every ray of the batch, the extremes over all rays
and poses, which drrserve's samplers do not reproduce: use ``renderer="siddon"``, or
drrclient.nanodrr for trilinear rendering in nanodrr's conventions); Siddon with ``mode`` other
than "nearest", ``reducefn`` other than "sum", ``filter_intersections_outside_volume``; renderer
keywords of ``forward`` (``align_corners=True``); a calibration that is not DiffDRR's intrinsic
matrix. Not offered (NotImplementedError): gradients with respect to the volume or the
calibration. The low-level ``render(density, source, target)`` (rays of one's own) is DiffDRR's,
and runs locally.
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from diffdrr.drr import DRR as _DiffDRR
from diffdrr.pose import RigidTransform, convert

from drrclient._torch_render import ADDRESS_VARIABLE, Render, connect, default_client, uploads
from drrclient.client import Client
from drrclient.geometry import Intrinsics
from drrclient.options import RenderOptions

__all__ = ["ADDRESS_VARIABLE", "DRR", "connect"]

# DiffDRR's pixel (row i, column j) with reverse_x_axis looks along camera ray (x0 - delx * (j -
# (W - 1) / 2), y0 - dely * (i - (H - 1) / 2), sdd); drrserve's along (delx * (j - (W - 1) / 2) -
# x0, dely * (i - (H - 1) / 2) - y0, sdd) for the same x0, y0: the two cameras differ by a half
# turn about the optical axis, which drrserve's camera->world takes on its right.
_HALF_TURN = (-1.0, -1.0, 1.0, 1.0)

_TRILINEAR = ("drrclient.diffdrr renders DiffDRR's Siddon renderer only: DiffDRR's Trilinear "
              "samples n_points over one alpha range shared by every ray of the batch (the "
              "extremes over all rays and poses), which drrserve's samplers do not reproduce. "
              "Use renderer='siddon', or drrclient.nanodrr for trilinear rendering in nanodrr's "
              "conventions")


def _check_siddon(renderer: str, renderer_kwargs: dict[str, Any]) -> None:
    """Refuses a renderer, or a Siddon option, whose images drrserve does not compute."""
    if renderer == "trilinear":
        raise ValueError(_TRILINEAR)
    if renderer != "siddon":
        raise ValueError(f"renderer must be 'siddon' or 'trilinear', not {renderer}")
    mode = renderer_kwargs.get("mode", "nearest")
    if mode != "nearest":
        raise ValueError(f"mode={mode!r}: drrserve's Siddon takes each crossed voxel's own value "
                         "(DiffDRR's mode='nearest'), not an interpolated one")
    reducefn = renderer_kwargs.get("reducefn", "sum")
    if not (isinstance(reducefn, str) and reducefn == "sum"):
        raise ValueError(f"reducefn={reducefn!r}: drrserve's Siddon sums mu * length along each "
                         "ray (DiffDRR's reducefn='sum') and reduces no other way")
    if renderer_kwargs.get("filter_intersections_outside_volume", False):
        raise ValueError("filter_intersections_outside_volume=True is not offered (DiffDRR "
                         "0.6.1's own filter fails with it); leave it False")


# The render options that leave DiffDRR's images as they are: where the volume is kept and
# the images' precision on the wire.
_OPTIONS_OFFERED = ("volume_storage", "image_dtype")


def _check_options(options: RenderOptions) -> None:
    """Refuses render options that would make the images other than DiffDRR's Siddon ones."""
    if options.renderer not in (None, "siddon"):
        raise ValueError(f"options.renderer={options.renderer!r}: drrclient.diffdrr renders "
                         "DiffDRR's Siddon renderer only")
    defaults = RenderOptions()
    for field in fields(RenderOptions):
        if field.name in _OPTIONS_OFFERED or field.name == "renderer":
            continue
        if getattr(options, field.name) != getattr(defaults, field.name):
            raise ValueError(f"options.{field.name} is not offered: drrclient.diffdrr returns "
                             "DiffDRR's images (its options: renderer, "
                             f"{', '.join(_OPTIONS_OFFERED)})")


def _check_forward_kwargs(kwargs: dict[str, Any]) -> None:
    """Refuses renderer keywords of forward other than DiffDRR Siddon's default align_corners."""
    for name, value in kwargs.items():
        if name == "align_corners":
            if value:
                raise ValueError("align_corners=True is not offered: drrserve's voxels are "
                                 "DiffDRR's with align_corners=False")
        else:
            raise TypeError(f"DRR.forward() got an unexpected keyword argument {name!r}")


def _intrinsics(k: npt.NDArray[np.float64]) -> tuple[float, float, float, float, float]:
    """(sdd, delx, dely, x0, y0) of DiffDRR's calibration matrix `k`."""
    delx, dely, sdd, x0, y0 = (float(v) for v in (k[0, 0], k[1, 1], k[2, 2], k[0, 3], k[1, 3]))
    expected = np.array([[delx, 0, 0, x0], [0, dely, 0, y0], [0, 0, sdd, 0], [0, 0, 0, 1]])
    if not np.allclose(k, expected, rtol=0.0, atol=1e-9 * max(float(np.abs(k).max()), 1.0)):
        raise ValueError("calibration must be DiffDRR's [[delx, 0, 0, x0], [0, dely, 0, y0], "
                         f"[0, 0, sdd, 0], [0, 0, 0, 1]], not {k.tolist()}")
    return sdd, delx, dely, x0, y0


class DRR(_DiffDRR):
    """diffdrr.drr.DRR whose forward renders on drrserve (module docstring): DiffDRR's
    arguments, and ``client`` (default: connect()'s) and ``options`` (drrserve's render options;
    the renderer is Siddon)."""

    def __init__(self, subject: Any, sdd: float, height: int, delx: float,
                 width: int | None = None, dely: float | None = None, x0: float = 0.0,
                 y0: float = 0.0, p_subsample: float | None = None, reshape: bool = True,
                 reverse_x_axis: bool = True, patch_size: int | None = None,
                 renderer: str = "siddon", voxel_shift: float = 0.5, persistent: bool = True,
                 compile_renderer: bool = False, checkpoint_gradients: bool = False, *,
                 client: Client | None = None, options: RenderOptions = RenderOptions(),
                 **renderer_kwargs: Any) -> None:
        _check_siddon(renderer, renderer_kwargs)
        _check_options(options)
        # DiffDRR's own (a local Siddon renderer for render(), never called by forward).
        super().__init__(subject, sdd, height, delx, width=width, dely=dely, x0=x0, y0=y0,
                         p_subsample=p_subsample, reshape=reshape,
                         reverse_x_axis=reverse_x_axis, patch_size=patch_size,
                         renderer=renderer, voxel_shift=voxel_shift, persistent=persistent,
                         compile_renderer=False, checkpoint_gradients=checkpoint_gradients,
                         **renderer_kwargs)
        self.voxel_shift = float(voxel_shift)
        self.drrserve_client = client
        self.drrserve_options = replace(options, renderer="siddon")

    def forward(self, *args: Any, parameterization: str | None = None,
                convention: str | None = None, calibration: Any = None,
                mask_to_channels: bool = False, degrees: bool = False,
                **kwargs: Any) -> torch.Tensor:
        """DiffDRR's DRR of the pose ``args`` (a RigidTransform, or rotation and translation of
        ``parameterization``), rendered by drrserve."""
        _check_forward_kwargs(kwargs)
        if self.density.requires_grad:
            raise NotImplementedError("drrclient.diffdrr has no gradients with respect to the "
                                      "volume (density)")
        if parameterization is None:
            pose = args[0]
        else:
            pose = convert(*args, parameterization=parameterization, convention=convention,
                           degrees=degrees)
        rt_inv = self._rt_inv(pose)
        affine = self._volume_affine()
        cameras = self._cameras(calibration, rt_inv, affine)
        labels = None
        if mask_to_channels:
            if getattr(self, "mask", None) is None:
                raise ValueError("mask_to_channels=True needs a subject with a mask (labelmap)")
            labels = self.mask
        client = self.drrserve_client or default_client()
        volume_id = uploads.volume_of(client, self.density, labels, affine, "attenuation",
                                      xyz=True)
        classes = int(labels.max().item()) + 1 if labels is not None else 1
        dtype = torch.float64 if self.density.dtype == torch.float64 else torch.float32
        images = Render.apply(rt_inv, client, volume_id, cameras, self.drrserve_options,
                              classes, dtype)
        if not self.detector.reverse_x_axis:
            images = images.flip(-1)
        return self._as_diffdrrs(images)

    def _rt_inv(self, pose: Any) -> torch.Tensor:
        """drrserve's camera->world [B, 4, 4] for DiffDRR's pose: the matrix of
        detector.reorient.compose(pose), after a half turn about the optical axis (_HALF_TURN)."""
        matrix = pose.matrix if isinstance(pose, RigidTransform) else torch.as_tensor(pose)
        matrix = matrix.reshape(-1, 4, 4)
        world_from_camera = matrix @ self.detector._reorient.to(matrix)
        return world_from_camera * world_from_camera.new_tensor(_HALF_TURN)

    def _cameras(self, calibration: Any, rt_inv: torch.Tensor,
                 affine: npt.NDArray[np.float64]) -> list[Intrinsics]:
        """The cameras of the poses rt_inv: the detector's intrinsics, or ``calibration``'s (one,
        or one per pose), scaled for each pose so that the volume (`affine`) lies between source
        and detector (the module docstring)."""
        if calibration is None:
            matrices = self.detector._calibration
        else:
            matrices = (calibration.matrix if isinstance(calibration, RigidTransform)
                        else torch.as_tensor(calibration))
            if matrices.requires_grad:
                raise NotImplementedError("drrclient.diffdrr has no gradients with respect to "
                                          "the calibration")
        values = matrices.detach().to("cpu", torch.float64).reshape(-1, 4, 4).numpy()
        poses = rt_inv.detach().to("cpu", torch.float64).numpy()
        if len(values) not in (1, len(poses)):
            raise ValueError(f"calibration has {len(values)} matrices for {len(poses)} poses")
        # The volume's corners (voxel centres at integer indices, so its faces at -0.5 and n -
        # 0.5), and how deep each pose's camera sees them.
        sizes = np.array(self.density.shape[-3:], dtype=np.float64)
        grid = np.stack(np.meshgrid(*[[-0.5, n - 0.5] for n in sizes], indexing="ij"), -1)
        corners = affine @ np.concatenate([grid.reshape(-1, 3), np.ones((8, 1))], 1).T
        cameras = []
        for b, pose in enumerate(poses):
            if not np.all(np.isfinite(pose)) or abs(np.linalg.det(pose[:3, :3])) < 1e-9:
                raise ValueError(f"pose {b} is not a finite, invertible transform: "
                                 f"{pose.tolist()}")
            sdd, delx, dely, x0, y0 = _intrinsics(values[b % len(values)])
            depth = float((np.linalg.inv(pose) @ corners)[2].max())
            scale = max(1.0, 1.01 * depth / sdd)
            cameras.append(Intrinsics(sdd=sdd * scale, delx=delx * scale, dely=dely * scale,
                                      x0=x0 * scale, y0=y0 * scale,
                                      height=int(self.detector.height),
                                      width=int(self.detector.width)))
        return cameras

    def _volume_affine(self) -> npt.NDArray[np.float64]:
        """The affine DiffDRR renders with (its float32 _affine), moved so that drrserve's voxel
        centres (integer indices) are DiffDRR's: voxel k spans (k - s, k + 1 - s), s the
        voxel_shift, so its centre is k + 0.5 - s."""
        affine = self._affine.detach().to("cpu", torch.float64).reshape(4, 4).numpy()
        shift = np.eye(4)
        shift[:3, 3] = 0.5 - self.voxel_shift
        result: npt.NDArray[np.float64] = affine @ shift
        return result

    def _as_diffdrrs(self, images: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] images as DiffDRR returns them: with p_subsample, the detector's pixels
        (zero elsewhere, or gathered as [B, C, n] without reshape); without reshape, [B, C,
        H * W]."""
        flat = images.flatten(2)
        if self.detector.n_subsample is None:
            return images if self.reshape else flat
        index = torch.as_tensor(self.detector.subsamples[-1], device=images.device)
        if not self.reshape:
            return flat[..., index]
        kept = torch.zeros(flat.shape[-1], dtype=images.dtype, device=images.device)
        kept[index] = 1
        return images * kept.view(images.shape[-2:])
