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

import os
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from drrclient.client import Client
from drrclient.geometry import Intrinsics
from drrclient.options import RenderOptions, Sampling

#: Where ``render`` finds the server when neither ``client`` nor ``connect()`` says.
ADDRESS_VARIABLE = "DRRSERVE_ADDRESS"

_default_client: Client | None = None
_default_lock = threading.Lock()


def connect(address: str, **client_options: Any) -> Client:
    """Makes ``render`` use the server at ``address`` (Client's keyword options: TLS, token,
    retries); returns the client."""
    global _default_client
    with _default_lock:
        if _default_client is not None:
            _default_client.close()
        _default_client = Client(address, **client_options)
        return _default_client


def _client() -> Client:
    global _default_client
    with _default_lock:
        if _default_client is None:
            _default_client = Client(os.environ.get(ADDRESS_VARIABLE, "127.0.0.1:50051"))
        return _default_client


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


def _volume_of(subject: Any) -> tuple[Any, Any | None, str, npt.NDArray[np.float64]]:
    """What a subject renders from: a nanodrr Subject's attenuation volume [1, 1, D, H, W] and,
    with more than one class, its labels; or a TorchIO ScalarImage's HU [1, W, H, D]; and the
    voxel->world affine."""
    if hasattr(subject, "voxel_to_world"):
        labelled = int(subject.n_classes) > 1
        affine = subject.voxel_to_world.detach().to("cpu", torch.float64).numpy()
        return subject.image, subject.label if labelled else None, "attenuation", affine
    if hasattr(subject, "affine") and hasattr(subject, "data"):
        return subject.data, None, "hu", np.asarray(subject.affine, dtype=np.float64)
    raise TypeError(f"render needs a nanodrr Subject or a TorchIO ScalarImage, not "
                    f"{type(subject).__name__}")


@dataclass
class _Upload:
    """A volume uploaded from a subject's tensors, as they were then."""

    client: weakref.ref[Client]
    volume: weakref.ref[Any]
    labels: weakref.ref[Any] | None
    version: int
    affine: bytes
    volume_id: str

    def holds(self, client: Client, volume: Any, labels: Any, version: int,
              affine: bytes) -> bool:
        return (self.client() is client and self.volume() is volume
                and (self.labels() if self.labels is not None else None) is labels
                and self.version == version and self.affine == affine)


class _Uploads:
    """The volume id of each subject's current volume (and labels) on each client. A tensor
    changed in place (its version moves) or replaced (a Subject whose attenuation parameters
    change computes a new one), or an affine that moved, is uploaded again. The client stops
    keeping a volume for re-upload (Client.forget) once its tensor is gone or replaced, so that
    a loop over many subjects holds one volume each at most while they live."""

    def __init__(self) -> None:
        self._uploads: dict[tuple[int, int, int], _Upload] = {}
        self._lock = threading.Lock()

    def volume_of(self, client: Client, subject: Any) -> str:
        volume, labels, kind, affine = _volume_of(subject)
        key = (id(client), id(volume), id(labels))
        version = volume._version + (labels._version if labels is not None else 0)
        with self._lock:
            kept = self._uploads.get(key)
            if kept is not None and kept.holds(client, volume, labels, version, affine.tobytes()):
                return kept.volume_id
        if kind == "attenuation":
            voxels = volume.detach()[0, 0].to("cpu", torch.float32).numpy()
        else:  # TorchIO's [1, W, H, D] (x slowest) as drrserve's [D, H, W] (x fastest)
            voxels = volume.detach()[0].to("cpu", torch.float32).numpy().transpose(2, 1, 0)
        classes = (labels.detach()[0, 0].to("cpu").numpy().astype(np.uint16)
                   if labels is not None else None)
        volume_id = client.upload_volume(np.ascontiguousarray(voxels), affine, value_kind=kind,
                                         labels=classes)
        upload = _Upload(weakref.ref(client), weakref.ref(volume),
                         weakref.ref(labels) if labels is not None else None, version,
                         affine.tobytes(), volume_id)
        with self._lock:
            replaced = self._uploads.get(key)
            self._uploads[key] = upload
            self._forget(replaced)
        weakref.finalize(volume, self._drop, key, upload)
        return volume_id

    def _drop(self, key: tuple[int, int, int], upload: _Upload) -> None:
        """Forgets `upload` once its volume tensor is gone (unless replaced already)."""
        with self._lock:
            if self._uploads.get(key) is upload:
                del self._uploads[key]
                self._forget(upload)

    def _forget(self, upload: _Upload | None) -> None:
        """Makes the client forget `upload`'s volume, unless a current upload holds it too (the
        same content from another subject or tensor)."""
        client = upload.client() if upload is not None else None
        if upload is None or client is None:
            return
        if not any(u.volume_id == upload.volume_id and u.client() is client
                   for u in self._uploads.values()):
            client.forget(upload.volume_id)


_uploads = _Uploads()


class _Render(torch.autograd.Function):
    """Forward renders rt_inv's poses on the server; backward sends dL/dI and gets dL/d rt_inv.
    The images have `classes` channels: the server's one per class present in the labels, and
    zero channels after them up to the subject's n_classes (nanodrr's max_label may name classes
    no voxel has)."""

    @staticmethod
    def forward(ctx: Any, rt_inv: torch.Tensor, client: Client, volume_id: str,
                cameras: Sequence[Intrinsics], options: RenderOptions,
                classes: int) -> torch.Tensor:
        poses = list(rt_inv.detach().to("cpu", torch.float64).numpy())
        images = client.render(volume_id, poses, cameras, options)
        rendered = images.shape[1]
        # (A copy either way: the decoded images are a read-only view of the response.)
        padding = np.zeros((images.shape[0], max(classes - rendered, 0), *images.shape[2:]),
                           dtype=images.dtype)
        channels = np.concatenate([images, padding], axis=1)
        ctx.save_for_backward(rt_inv)
        ctx.request = (client, volume_id, poses, cameras, options, rendered)
        return torch.from_numpy(channels).to(rt_inv.device, _image_dtype(rt_inv))

    @staticmethod
    def backward(ctx: Any, grad_images: torch.Tensor) -> tuple[Any, ...]:
        (rt_inv,) = ctx.saved_tensors
        client, volume_id, poses, cameras, options, rendered = ctx.request
        upstream = grad_images.detach()[:, :rendered].to("cpu", torch.float32).contiguous()
        _, _, rt_inv_gradients = client.render_with_gradients(volume_id, poses, upstream.numpy(),
                                                              cameras, options)
        grad = torch.from_numpy(np.asarray(rt_inv_gradients)).to(rt_inv.device, rt_inv.dtype)
        return grad, None, None, None, None, None


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
    if rt_inv.ndim != 3 or rt_inv.shape[1:] != (4, 4):
        raise ValueError(f"rt_inv must be [B, 4, 4], not {list(rt_inv.shape)}")
    batch = rt_inv.shape[0]
    k_invs = k_inv.detach().to("cpu", torch.float64).reshape(-1, 3, 3).numpy()
    sdds = sdd.detach().to("cpu", torch.float64).reshape(-1).numpy()
    if len(k_invs) not in (1, batch) or len(sdds) not in (1, batch):
        raise ValueError(f"k_inv ({len(k_invs)}) and sdd ({len(sdds)}) need 1 or {batch} entries")
    cameras = [intrinsics_from_k_inv(k_invs[i % len(k_invs)], float(sdds[i % len(sdds)]), height,
                                     width, orthographic) for i in range(batch)]
    client = client or _client()
    volume_id = _uploads.volume_of(client, subject)
    if sampling is None and options.sampling is None and options.renderer in (None, "trilinear"):
        sampling = installed_sampling()
    options = replace(options, n_samples=n_samples, soft_labels=soft_labels,
                      sampling=sampling or options.sampling)
    classes = int(getattr(subject, "n_classes", 1))
    return _Render.apply(rt_inv, client, volume_id, cameras, options, classes)
