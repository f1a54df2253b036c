"""What drrclient's torch drop-ins (drrclient.nanodrr, drrclient.diffdrr) share: the default
server, the cache of uploaded volumes, and the autograd Function that renders on the server and
asks it for dL/d rt_inv in backward. Private: the drop-ins are the interface (torch needed)."""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from drrclient.client import Client
from drrclient.geometry import Intrinsics
from drrclient.options import RenderOptions

#: Where the drop-ins find the server when neither ``client`` nor ``connect()`` says.
ADDRESS_VARIABLE = "DRRSERVE_ADDRESS"

_default_client: Client | None = None
_default_lock = threading.Lock()


def connect(address: str, **client_options: Any) -> Client:
    """Makes drrclient's drop-ins (drrclient.nanodrr's ``render``, drrclient.diffdrr's ``DRR``)
    use the server at ``address`` (Client's keyword options: TLS, token, retries); returns the
    client."""
    global _default_client
    with _default_lock:
        if _default_client is not None:
            _default_client.close()
        _default_client = Client(address, **client_options)
        return _default_client


def default_client() -> Client:
    """connect()'s client, or one for ``DRRSERVE_ADDRESS`` (127.0.0.1:50051 by default)."""
    global _default_client
    with _default_lock:
        if _default_client is None:
            _default_client = Client(os.environ.get(ADDRESS_VARIABLE, "127.0.0.1:50051"))
        return _default_client


@dataclass
class _Upload:
    """A volume uploaded from tensors, as they were then."""

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


def _voxels(tensor: Any, xyz: bool, dtype: torch.dtype) -> npt.NDArray[Any]:
    """The last three axes of `tensor` (any leading axes of size one) as a numpy [D, H, W]
    volume of `dtype`, x fastest: as they are, or reversed when they are (x, y, z) (TorchIO's
    order)."""
    array: npt.NDArray[Any] = tensor.detach().to("cpu", dtype).reshape(tensor.shape[-3:]).numpy()
    return array.transpose(2, 1, 0) if xyz else array


class _Uploads:
    """The volume id of each volume tensor (and labels) on each client. A tensor changed in place
    (its version moves) or replaced (a nanodrr Subject whose attenuation parameters change
    computes a new one; a DiffDRR module moved to another dtype holds new buffers), or an affine
    that moved, is uploaded again. The client stops keeping a volume for re-upload
    (Client.forget) once its tensor is gone or replaced, so that a loop over many subjects holds
    one volume each at most while they live."""

    def __init__(self) -> None:
        self._uploads: dict[tuple[int, int, int], _Upload] = {}
        self._lock = threading.Lock()

    def volume_of(self, client: Client, volume: Any, labels: Any | None,
                  affine: npt.NDArray[np.float64], kind: str, xyz: bool = False) -> str:
        """The id of `volume` (a tensor whose last three axes are the voxels: [D, H, W], or
        [X, Y, Z] when `xyz`; leading axes of size one) with its `labels` (the same layout, or
        None) and voxel->world `affine`, values of `kind` ("hu" or "attenuation"): uploaded
        unless uploaded as they are now."""
        affine = np.asarray(affine, dtype=np.float64)
        key = (id(client), id(volume), id(labels))
        version = volume._version + (labels._version if labels is not None else 0)
        with self._lock:
            kept = self._uploads.get(key)
            if kept is not None and kept.holds(client, volume, labels, version, affine.tobytes()):
                return kept.volume_id
        voxels = _voxels(volume, xyz, torch.float32)
        classes = (_voxels(labels, xyz, torch.int32).astype(np.uint16) if labels is not None
                   else None)
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


uploads = _Uploads()


class Render(torch.autograd.Function):
    """Forward renders rt_inv's poses on the server; backward sends dL/dI and gets dL/d rt_inv.
    The images, of `dtype` on rt_inv's device, have `classes` channels: the server's one per
    class of the labels (largest + 1), and zero channels after them up to `classes` (a caller's
    count may name classes no voxel has)."""

    @staticmethod
    def forward(ctx: Any, rt_inv: torch.Tensor, client: Client, volume_id: str,
                cameras: Sequence[Intrinsics], options: RenderOptions, classes: int,
                dtype: torch.dtype) -> torch.Tensor:
        poses = list(rt_inv.detach().to("cpu", torch.float64).numpy())
        images = client.render(volume_id, poses, cameras, options)
        rendered = images.shape[1]
        # (A copy either way: the decoded images are a read-only view of the response.)
        padding = np.zeros((images.shape[0], max(classes - rendered, 0), *images.shape[2:]),
                           dtype=images.dtype)
        channels = np.concatenate([images, padding], axis=1)
        ctx.save_for_backward(rt_inv)
        ctx.request = (client, volume_id, poses, cameras, options, rendered)
        return torch.from_numpy(channels).to(rt_inv.device, dtype)

    @staticmethod
    def backward(ctx: Any, grad_images: torch.Tensor) -> tuple[Any, ...]:
        (rt_inv,) = ctx.saved_tensors
        client, volume_id, poses, cameras, options, rendered = ctx.request
        upstream = grad_images.detach()[:, :rendered].to("cpu", torch.float32).contiguous()
        _, _, rt_inv_gradients = client.render_with_gradients(volume_id, poses, upstream.numpy(),
                                                              cameras, options)
        grad = torch.from_numpy(np.asarray(rt_inv_gradients)).to(rt_inv.device, rt_inv.dtype)
        return grad, None, None, None, None, None, None
