"""How rays are computed and images returned."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from drr.v1 import renderer_pb2

_RENDERERS = {"trilinear": renderer_pb2.RENDERER_KIND_TRILINEAR,
              "siddon": renderer_pb2.RENDERER_KIND_SIDDON}
_OUTPUTS = {"line_integral": renderer_pb2.OUTPUT_LINE_INTEGRAL, "exp": renderer_pb2.OUTPUT_EXP,
            "mip": renderer_pb2.OUTPUT_MIP}
_DTYPES = {"float32": renderer_pb2.DTYPE_FLOAT32, "float16": renderer_pb2.DTYPE_FLOAT16,
           "bfloat16": renderer_pb2.DTYPE_BFLOAT16}
_SAMPLERS = {"exact": renderer_pb2.SAMPLER_EXACT, "texture": renderer_pb2.SAMPLER_TEXTURE}


_T = TypeVar("_T")


def _pick(table: Mapping[str, _T], name: str, what: str) -> _T:
    if name not in table:
        raise ValueError(f"{what} must be one of {sorted(table)}, not {name!r}")
    return table[name]


@dataclass(frozen=True)
class RenderOptions:
    """Rendering options; the defaults are nanodrr's.

    ``renderer``: trilinear (n_samples points over the source->detector
    segment) or siddon (exact radiological path). ``output``: line_integral,
    exp (exp(-line integral)) or mip. ``image_dtype`` (on the wire) and
    ``volume_storage`` (on the device): float32, float16 or bfloat16.
    ``mu_water``/``mu_bone``/``hu_bone`` change the HU -> mu map without a
    re-upload. With labels: every class is a channel, unless ``sum_channels``
    or ``classes`` says otherwise.
    """

    n_samples: int = 500
    renderer: str = "trilinear"
    output: str = "line_integral"
    image_dtype: str = "float32"
    volume_storage: str = "float32"
    sampler: str = "exact"
    mu_water: float | None = None
    mu_bone: float | None = None
    hu_bone: float | None = None
    sum_channels: bool = False
    classes: Sequence[int] | None = None

    def to_proto(self) -> renderer_pb2.RenderOptions:
        return renderer_pb2.RenderOptions(
            n_samples=self.n_samples,
            renderer=_pick(_RENDERERS, self.renderer, "renderer"),
            output=_pick(_OUTPUTS, self.output, "output"),
            image_dtype=_pick(_DTYPES, self.image_dtype, "image_dtype"),
            volume_storage=_pick(_DTYPES, self.volume_storage, "volume_storage"),
            sampler=_pick(_SAMPLERS, self.sampler, "sampler"),
            attenuation=renderer_pb2.Attenuation(mu_water=self.mu_water or 0.0,
                                                 mu_bone=self.mu_bone or 0.0,
                                                 hu_bone=self.hu_bone or 0.0),
            channels=renderer_pb2.Channels(sum=self.sum_channels,
                                           classes=list(self.classes or [])))


_LOSSES = {"ncc": renderer_pb2.LOSS_KIND_NCC, "multiscale_ncc": renderer_pb2.LOSS_KIND_MULTISCALE_NCC,
           "gradient_ncc": renderer_pb2.LOSS_KIND_GRADIENT_NCC, "mse": renderer_pb2.LOSS_KIND_MSE}


@dataclass(frozen=True)
class Loss:
    """A similarity to a target image, as nanodrr's metrics define it: ncc
    (``patch_sizes=[p]`` for patch NCC), multiscale_ncc (``patch_sizes`` with
    ``patch_weights``; 0 means the whole image), gradient_ncc (Gaussian blur
    ``sigma``, then Sobel, then NCC) or mse. NCC variants are similarities
    (higher is better)."""

    kind: str = "ncc"
    patch_sizes: Sequence[int | None] | None = None
    patch_weights: Sequence[float] | None = None
    sigma: float | None = None
    eps: float | None = None

    def to_proto(self, target_id: str, return_images: bool = False) -> renderer_pb2.Loss:
        return renderer_pb2.Loss(
            target_id=target_id, kind=_pick(_LOSSES, self.kind, "loss kind"),
            patch_sizes=[int(p or 0) for p in (self.patch_sizes or [])],
            patch_weights=list(self.patch_weights or []),
            sigma=(-1.0 if self.sigma == 0 else (self.sigma or 0.0)), eps=self.eps or 0.0,
            return_images=return_images)


def decode_images(tensor: renderer_pb2.ImageTensor) -> npt.NDArray[np.float32]:
    """The [B, C, H, W] images of a response, as float32 (half precision on
    the wire is widened exactly)."""
    shape = tuple(tensor.shape)
    if tensor.dtype == renderer_pb2.DTYPE_FLOAT32:
        return np.frombuffer(tensor.data, dtype="<f4").reshape(shape)
    if tensor.dtype == renderer_pb2.DTYPE_FLOAT16:
        return np.frombuffer(tensor.data, dtype="<f2").astype(np.float32).reshape(shape)
    if tensor.dtype == renderer_pb2.DTYPE_BFLOAT16:
        bits = np.frombuffer(tensor.data, dtype="<u2").astype(np.uint32) << 16
        return bits.view(np.float32).reshape(shape)
    raise ValueError(f"unexpected image dtype {tensor.dtype}")
