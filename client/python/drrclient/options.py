"""How rays are computed and images returned."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from drrclient._enums import pick
from drrclient._proto.drr.v1 import renderer_pb2

#: The spellings of the drr.v1 enums (drrclient._enums; any case is accepted at run time).
Renderer = Literal["trilinear", "siddon"]
Output = Literal["line_integral", "exp", "mip"]
DType = Literal["float32", "float16", "bfloat16"]
Sampler = Literal["exact", "texture"]
Sampling = Literal["segment", "clipped"]
LossKind = Literal["ncc", "multiscale_ncc", "gradient_ncc", "mse", "mutual_information"]


@dataclass(frozen=True)
class RenderOptions:
    """Rendering options. A field left None is left out of the request, and
    the server takes its default (nanodrr's samples per ray and HU -> mu map;
    trilinear, line integral, float32, exact sampling).

    ``renderer``: trilinear (n_samples points over the source->detector
    segment) or siddon (exact radiological path). ``output``: line_integral,
    exp (exp(-line integral)) or mip. ``image_dtype`` (on the wire) and
    ``volume_storage`` (on the device): float32, float16 or bfloat16.
    ``sampler``: exact or texture (CUDA only). ``sampling`` (trilinear):
    segment (nanodrr <= 0.1.6, n_samples points over the whole segment) or
    clipped (nanodrr 0.1.7, n_samples midpoints of the part of the segment
    that meets the volume). ``soft_labels`` (nanodrr 0.1.7): each trilinear
    neighbour of a sample goes to its own class's channel, so class channels
    are anti-aliased and differentiable. The spellings are the proto's
    enum value names (drrclient._enums). ``mu_water``/``mu_bone``/``hu_bone``
    change the HU -> mu map without a re-upload. With labels: every class is
    a channel, unless ``sum_channels`` or ``classes`` says otherwise.
    """

    n_samples: int | None = None
    renderer: Renderer | None = None
    output: Output | None = None
    image_dtype: DType | None = None
    volume_storage: DType | None = None
    sampler: Sampler | None = None
    sampling: Sampling | None = None
    soft_labels: bool = False
    mu_water: float | None = None
    mu_bone: float | None = None
    hu_bone: float | None = None
    sum_channels: bool = False
    classes: Sequence[int] | None = None

    def to_proto(self) -> renderer_pb2.RenderOptions:
        return renderer_pb2.RenderOptions(
            n_samples=self.n_samples,
            renderer=pick(renderer_pb2.RendererKind.DESCRIPTOR, self.renderer, "renderer"),
            output=pick(renderer_pb2.Output.DESCRIPTOR, self.output, "output"),
            image_dtype=pick(renderer_pb2.DType.DESCRIPTOR, self.image_dtype, "image_dtype"),
            volume_storage=pick(renderer_pb2.DType.DESCRIPTOR, self.volume_storage, "volume_storage"),
            sampler=pick(renderer_pb2.SamplerKind.DESCRIPTOR, self.sampler, "sampler"),
            sampling=pick(renderer_pb2.Sampling.DESCRIPTOR, self.sampling, "sampling"),
            soft_labels=self.soft_labels,
            attenuation=renderer_pb2.Attenuation(mu_water=self.mu_water, mu_bone=self.mu_bone,
                                                 hu_bone=self.hu_bone),
            channels=renderer_pb2.Channels(sum=self.sum_channels, classes=list(self.classes or [])))


@dataclass(frozen=True)
class Loss:
    """A similarity to a target image, as nanodrr's metrics define it: ncc
    (``patch_sizes=[p]`` for patch NCC), multiscale_ncc (``patch_sizes`` with
    ``patch_weights``; 0 means the whole image), gradient_ncc (Gaussian blur
    ``sigma`` pixels, 0 for none, then Sobel, then NCC), mse, or
    mutual_information (``bins`` per image, each image min-max normalised).
    NCC variants and mutual information are similarities (higher is better).
    A field left None takes the server's default (nanodrr's)."""

    kind: LossKind | None = None
    patch_sizes: Sequence[int | None] | None = None
    patch_weights: Sequence[float] | None = None
    sigma: float | None = None
    eps: float | None = None
    bins: int | None = None

    def to_proto(self, target_id: str, return_images: bool = False) -> renderer_pb2.Loss:
        return renderer_pb2.Loss(
            target_id=target_id, kind=pick(renderer_pb2.LossKind.DESCRIPTOR, self.kind, "loss kind"),
            patch_sizes=[int(p or 0) for p in (self.patch_sizes or [])],
            patch_weights=list(self.patch_weights or []), sigma=self.sigma, eps=self.eps,
            bins=self.bins, return_images=return_images)


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
