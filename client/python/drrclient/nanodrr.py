"""nanodrr's ``render``, computed by drrserve: change one import (torch and nanodrr needed).

    from nanodrr.drr import render                 # before
    from drrclient.nanodrr import render           # after: the server renders

    images = render(subject, k_inv, rt_inv, sdd, height, width, n_samples=500)
    loss = -ncc(images, target); loss.backward()    # rt_inv.grad, from the server

``render`` takes nanodrr's own tensors and ``Subject`` and returns what nanodrr's ``render``
returns: the [B, C, H, W] images (one channel per class of the subject's labels) on rt_inv's
device, differentiable with respect to ``rt_inv`` (the server computes dL/d rt_inv from the
upstream gradient; autograd takes it on to whatever made rt_inv). It samples rays as the installed
nanodrr does (whole segments up to 0.1.6, clipped to the volume from 0.1.7), unless ``sampling``
says otherwise. The server is ``connect()``'s, or the ``DRRSERVE_ADDRESS`` environment variable's
(127.0.0.1:50051 by default), or a ``client`` passed in.

A subject is uploaded once (its attenuation volume and labels, as nanodrr computes them); a
subject whose attenuation parameters change is uploaded anew. A TorchIO ScalarImage of HU renders
too, with drrserve's default HU -> mu map (nanodrr's defaults).

Not offered: ray end points of one's own (``src``, ``tgt``) and gradients with respect to the
volume. ``rt_inv`` must be affine (last row 0, 0, 0, 1, as make_rt_inv makes it): its last row's
gradient is zero, where nanodrr's carries its homogeneous divide. nanodrr's ``backend`` is
accepted and ignored: the server renders.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from drrclient._torch_render import ADDRESS_VARIABLE, Render, connect, default_client, uploads
from drrclient.client import Client
from drrclient.geometry import Intrinsics
from drrclient.options import RenderOptions, Sampling

__all__ = ["ADDRESS_VARIABLE", "connect", "installed_sampling", "intrinsics_from_k_inv", "render"]


def installed_sampling() -> Sampling:
    """How the installed nanodrr samples rays: "clipped" from 0.1.7 on, else "segment"."""
    from nanodrr.drr import backends

    return "clipped" if hasattr(backends, "_clip_rays") else "segment"


def intrinsics_from_k_inv(k_inv: npt.NDArray[np.float64], sdd: float, height: int, width: int,
                          orthographic: bool) -> Intrinsics:
    """The camera nanodrr's make_k_inv(sdd, delx, dely, x0, y0, height, width) describes: K is
    [[sdd/delx, 0, x0/delx + W/2], [0, sdd/dely, y0/dely + H/2], [0, 0, 1]]. Anything else (a
    skewed or rotated K) is a ValueError."""
    k = np.linalg.inv(k_inv)
    pinhole = np.array([[k[0, 0], 0.0, k[0, 2]], [0.0, k[1, 1], k[1, 2]], [0.0, 0.0, 1.0]])
    if not np.allclose(k, pinhole, rtol=1e-6, atol=1e-6 * np.abs(k).max()):
        raise ValueError(f"k_inv is not one of nanodrr's make_k_inv (K = {k.tolist()})")
    delx, dely = sdd / k[0, 0], sdd / k[1, 1]
    return Intrinsics(sdd=sdd, delx=delx, dely=dely, x0=(k[0, 2] - width / 2.0) * delx,
                      y0=(k[1, 2] - height / 2.0) * dely, height=height, width=width,
                      orthographic=orthographic)


def _volume_of(subject: Any) -> tuple[Any, Any | None, str, npt.NDArray[np.float64], bool]:
    """What a subject renders from: a nanodrr Subject's attenuation volume [1, 1, D, H, W] and,
    with more than one class, its labels; or a TorchIO ScalarImage's HU [1, W, H, D] (x, y, z
    order); and the voxel->world affine."""
    if hasattr(subject, "voxel_to_world"):
        labelled = int(subject.n_classes) > 1
        affine = subject.voxel_to_world.detach().to("cpu", torch.float64).numpy()
        return subject.image, subject.label if labelled else None, "attenuation", affine, False
    if hasattr(subject, "affine") and hasattr(subject, "data"):
        return subject.data, None, "hu", np.asarray(subject.affine, dtype=np.float64), True
    raise TypeError(f"render needs a nanodrr Subject or a TorchIO ScalarImage, not "
                    f"{type(subject).__name__}")


def _image_dtype(rt_inv: torch.Tensor) -> torch.dtype:
    """nanodrr's images take the geometry's floating dtype (float32 for anything narrower)."""
    return torch.float64 if rt_inv.dtype == torch.float64 else torch.float32


def render(subject: Any, k_inv: torch.Tensor, rt_inv: torch.Tensor, sdd: torch.Tensor,
           height: int, width: int, n_samples: int = 500, soft_labels: bool = False,
           orthographic: bool = False, src: torch.Tensor | None = None,
           tgt: torch.Tensor | None = None, backend: str = "auto", *,
           client: Client | None = None, sampling: Sampling | None = None,
           options: RenderOptions = RenderOptions()) -> torch.Tensor:
    """nanodrr.drr.render's images [B, C, H, W], rendered by drrserve (module docstring).
    ``k_inv`` [B or 1, 3, 3] from make_k_inv, ``rt_inv`` [B, 4, 4] camera->world, ``sdd`` [B or
    1]; ``options`` carries drrserve's other render options (renderer, output, storage), and
    its ``sampling`` (or ``sampling``) overrides the installed nanodrr's (trilinear only)."""
    del backend  # the server renders
    if src is not None or tgt is not None:
        raise NotImplementedError("drrclient.nanodrr renders nanodrr's own rays; src and tgt "
                                  "of one's own are not offered")
    if n_samples < 2:
        raise ValueError("n_samples must be at least 2")
    if options.sum_channels or options.classes is not None:
        raise ValueError("options.sum_channels and options.classes are not offered: render "
                         "returns one channel per class of the subject, as nanodrr's does")
    if rt_inv.ndim != 3 or rt_inv.shape[1:] != (4, 4):
        raise ValueError(f"rt_inv must be [B, 4, 4], not {list(rt_inv.shape)}")
    batch = rt_inv.shape[0]
    k_invs = k_inv.detach().to("cpu", torch.float64).reshape(-1, 3, 3).numpy()
    sdds = sdd.detach().to("cpu", torch.float64).reshape(-1).numpy()
    if len(k_invs) not in (1, batch) or len(sdds) not in (1, batch):
        raise ValueError(f"k_inv ({len(k_invs)}) and sdd ({len(sdds)}) need 1 or {batch} entries")
    cameras = [intrinsics_from_k_inv(k_invs[i % len(k_invs)], float(sdds[i % len(sdds)]), height,
                                     width, orthographic) for i in range(batch)]
    client = client or default_client()
    volume, labels, kind, affine, xyz = _volume_of(subject)
    volume_id = uploads.volume_of(client, volume, labels, affine, kind, xyz)
    if sampling is None and options.sampling is None and options.renderer in (None, "trilinear"):
        sampling = installed_sampling()
    options = replace(options, n_samples=n_samples, soft_labels=soft_labels,
                      sampling=sampling or options.sampling)
    classes = int(getattr(subject, "n_classes", 1))
    return Render.apply(rt_inv, client, volume_id, cameras, options, classes,
                        _image_dtype(rt_inv))
