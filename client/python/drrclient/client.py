"""A connection to one drrserve."""

from __future__ import annotations

import collections
import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np
import numpy.typing as npt

from drr.v1 import (
    renderer_pb2,
    renderer_pb2_grpc,
    targets_pb2,
    targets_pb2_grpc,
    volumes_pb2,
    volumes_pb2_grpc,
)
from drrclient.geometry import Intrinsics, Pose, pose_to_proto
from drrclient.options import Loss, RenderOptions, decode_images
from drrclient.volume import as_wire_labels, as_wire_voxels, canonical_header_bytes, header_proto

CHUNK_BYTES = 1 << 20


class _CallDetails(
        collections.namedtuple("_CallDetails", ("method", "timeout", "metadata", "credentials",
                                                "wait_for_ready", "compression")),
        grpc.ClientCallDetails):
    """A call's details with metadata of our choosing."""


class _BearerToken(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                   grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds ``authorization: Bearer TOKEN`` to the metadata of every call."""

    def __init__(self, token: str):
        self._header = ("authorization", f"Bearer {token}")

    def _with_token(self, details: Any) -> _CallDetails:
        return _CallDetails(details.method, details.timeout,
                            [*(details.metadata or ()), self._header], details.credentials,
                            details.wait_for_ready, details.compression)

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._with_token(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._with_token(details), request)

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._with_token(details), requests)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._with_token(details), requests)


def _read(path: str | None) -> bytes | None:
    """The bytes of the file at ``path``, or None without one."""
    if path is None:
        return None
    with open(path, "rb") as f:
        return f.read()


class FrameError(Exception):
    """A stream frame the server answered with an error."""

    def __init__(self, frame_id: int, code: grpc.StatusCode, message: str):
        super().__init__(f"frame {frame_id}: {code.name}: {message}")
        self.frame_id = frame_id
        self.code = code
        self.message = message


@dataclass
class RenderFrame:
    """One answered frame of a stream: images [B, C, H, W], or an error."""

    frame_id: int
    images: npt.NDArray[np.float32] | None
    error: FrameError | None


def _pose_gradients(
        response: renderer_pb2.RenderResponse) -> tuple[list[npt.NDArray[Any]], npt.NDArray[Any]]:
    """(parameter gradients [B, k], rt_inv gradients [B, 4, 4]) of a response."""
    parameters = [np.asarray(g.parameters) for g in response.pose_gradients]
    rt_inv = np.stack([np.asarray(g.rt_inv).reshape(4, 4) for g in response.pose_gradients])
    return parameters, rt_inv


def _status_code(value: int) -> grpc.StatusCode:
    for code in grpc.StatusCode:
        if code.value[0] == value:
            return code
    return grpc.StatusCode.UNKNOWN


class Client:
    """Uploads volumes to and renders DRRs on one drrserve at ``target``."""

    def __init__(self, target: str = "127.0.0.1:50051", *, tls_ca: str | None = None,
                 tls_cert: str | None = None, tls_key: str | None = None,
                 token: str | None = None):
        """Connects to ``target`` ("host:port"): over TLS when ``tls_ca`` (the PEM file of the CA
        that signed the server's certificate) is given, with the client certificate ``tls_cert``
        and its key ``tls_key`` (PEM files) for mutual TLS; every call carries ``token`` (of a
        server started with ``--tokens``) as ``authorization: Bearer TOKEN``."""
        options = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
        if tls_ca is None and tls_cert is None and tls_key is None:
            channel = grpc.insecure_channel(target, options=options)
        else:
            if (tls_cert is None) != (tls_key is None):
                raise ValueError("tls_cert and tls_key go together")
            credentials = grpc.ssl_channel_credentials(
                root_certificates=_read(tls_ca), private_key=_read(tls_key),
                certificate_chain=_read(tls_cert))
            channel = grpc.secure_channel(target, credentials, options=options)
        self._channel = channel if token is None else grpc.intercept_channel(
            channel, _BearerToken(token))
        self._volumes = volumes_pb2_grpc.VolumesStub(self._channel)
        self._renderer = renderer_pb2_grpc.RendererStub(self._channel)
        self._targets = targets_pb2_grpc.TargetsStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def upload_volume(self, voxels: npt.ArrayLike, affine: npt.ArrayLike, value_kind: str = "hu",
                      labels: npt.ArrayLike | None = None) -> str:
        """Uploads a (D, H, W) volume (x fastest) with its 4x4 voxel->world
        affine and optional label volume (class per voxel, same shape);
        returns its id. Identical uploads give the same id."""
        array = as_wire_voxels(voxels)
        label_array = None if labels is None else as_wire_labels(labels, array.shape)
        header = header_proto(array, affine, value_kind, label_array)
        parts = [array.data.cast("B")]
        if label_array is not None:
            parts.append(label_array.data.cast("B"))

        def chunks() -> Iterator[volumes_pb2.UploadVolumeChunk]:
            digest = hashlib.sha256(canonical_header_bytes(header))
            yield volumes_pb2.UploadVolumeChunk(header=header)
            for data in parts:
                for start in range(0, len(data), CHUNK_BYTES):
                    piece = bytes(data[start:start + CHUNK_BYTES])
                    digest.update(piece)
                    yield volumes_pb2.UploadVolumeChunk(data=piece)
            yield volumes_pb2.UploadVolumeChunk(digest=digest.hexdigest())

        info: volumes_pb2.VolumeInfo = self._volumes.Upload(chunks())
        return info.volume_id

    def get_volume(self, volume_id: str) -> volumes_pb2.VolumeInfo:
        info: volumes_pb2.VolumeInfo = self._volumes.Get(volumes_pb2.GetVolumeRequest(volume_id=volume_id))
        return info

    def list_volumes(self) -> Sequence[volumes_pb2.VolumeInfo]:
        response: volumes_pb2.ListVolumesResponse = self._volumes.List(volumes_pb2.ListVolumesRequest())
        return list(response.volumes)

    def delete_volume(self, volume_id: str) -> None:
        self._volumes.Delete(volumes_pb2.DeleteVolumeRequest(volume_id=volume_id))

    def upload_target(self, image: npt.ArrayLike) -> str:
        """Stores a 2-D target image (H, W) for loss requests; returns its id."""
        array = np.ascontiguousarray(image, dtype="<f4")
        if array.ndim != 2:
            raise ValueError(f"a target is one (H, W) image, got shape {array.shape}")
        request = targets_pb2.UploadTargetRequest(height=array.shape[0], width=array.shape[1],
                                                  pixels=array.tobytes())
        info: targets_pb2.TargetInfo = self._targets.Upload(request)
        return info.target_id

    def loss_and_grad(
            self, volume_id: str, target_id: str, poses: Iterable[Pose | npt.ArrayLike],
            intrinsics: Intrinsics | Sequence[Intrinsics] = Intrinsics(), loss: Loss = Loss(),
            options: RenderOptions = RenderOptions(),
    ) -> tuple[npt.NDArray[Any], list[npt.NDArray[Any]], npt.NDArray[Any]]:
        """The loss of each pose's DRR against the target and its gradient:
        (losses [B], parameter gradients [B, k] in each pose's own
        parameterization, rt_inv gradients [B, 4, 4]). A registration step is
        this one call; no image crosses the wire."""
        request = self.render_request(volume_id, poses, intrinsics, options)
        request.loss.CopyFrom(loss.to_proto(target_id))
        response: renderer_pb2.RenderResponse = self._renderer.Render(request)
        return (np.asarray(response.losses), *_pose_gradients(response))

    @staticmethod
    def render_request(volume_id: str, poses: Iterable[Pose | npt.ArrayLike],
                       intrinsics: Intrinsics | Sequence[Intrinsics] = Intrinsics(),
                       options: RenderOptions = RenderOptions(),
                       frame_id: int = 0) -> renderer_pb2.RenderRequest:
        """The wire request for a batch of poses (Pose or 4x4 camera->world);
        ``intrinsics`` is one Intrinsics for all, or a list with one per pose."""
        request = renderer_pb2.RenderRequest(
            volume_id=volume_id, frame_id=frame_id,
            poses=[pose_to_proto(p) for p in poses], options=options.to_proto())
        if isinstance(intrinsics, Intrinsics):
            request.intrinsics.CopyFrom(intrinsics.to_proto())
        else:
            request.per_pose_intrinsics.extend(i.to_proto() for i in intrinsics)
        return request

    def render(self, volume_id: str, poses: Iterable[Pose | npt.ArrayLike],
               intrinsics: Intrinsics | Sequence[Intrinsics] = Intrinsics(),
               options: RenderOptions = RenderOptions()) -> npt.NDArray[np.float32]:
        """Renders a batch of poses; returns float32 images [B, C, H, W]."""
        request = self.render_request(volume_id, poses, intrinsics, options)
        response: renderer_pb2.RenderResponse = self._renderer.Render(request)
        return decode_images(response.images)

    def render_with_gradients(
            self, volume_id: str, poses: Iterable[Pose | npt.ArrayLike], upstream: npt.ArrayLike,
            intrinsics: Intrinsics | Sequence[Intrinsics] = Intrinsics(),
            options: RenderOptions = RenderOptions(),
    ) -> tuple[npt.NDArray[np.float32], list[npt.NDArray[Any]], npt.NDArray[Any]]:
        """Renders a batch and the pose gradients of sum(upstream * images)
        (a vector-Jacobian product). Returns (images [B, C, H, W],
        parameter gradients [B, k] in each pose's own parameterization (the 16
        matrix entries for matrix poses), rt_inv gradients [B, 4, 4])."""
        request = self.render_request(volume_id, poses, intrinsics, options)
        weights = np.ascontiguousarray(upstream, dtype="<f4")
        request.gradient.upstream = weights.tobytes()
        response: renderer_pb2.RenderResponse = self._renderer.Render(request)
        return (decode_images(response.images), *_pose_gradients(response))

    def jacobians(
            self, volume_id: str, poses: Iterable[Pose | npt.ArrayLike],
            intrinsics: Intrinsics | Sequence[Intrinsics] = Intrinsics(),
            options: RenderOptions = RenderOptions(),
    ) -> tuple[npt.NDArray[np.float32], list[npt.NDArray[Any]]]:
        """Renders a batch and the full Jacobian of every image with respect
        to each pose's own parameters: (images [B, C, H, W], [dI/dθ of each
        pose as [C, H, W, k]])."""
        request = self.render_request(volume_id, poses, intrinsics, options)
        request.jacobian = True
        response: renderer_pb2.RenderResponse = self._renderer.Render(request)
        images = decode_images(response.images)
        shape = images.shape[1:]
        jacobians = [np.frombuffer(g.jacobian, dtype="<f4").reshape(*shape, -1)
                     for g in response.pose_gradients]
        return images, jacobians

    def render_stream(self, requests: Iterable[renderer_pb2.RenderRequest]) -> Iterator[RenderFrame]:
        """Streams requests (each with its frame_id); yields every frame's
        answer in order. A bad frame yields its error; the stream goes on."""
        responses: Iterator[renderer_pb2.RenderResponse] = self._renderer.RenderStream(iter(requests))
        for response in responses:
            if response.status.code != 0:
                error = FrameError(response.frame_id, _status_code(response.status.code),
                                   response.status.message)
                yield RenderFrame(response.frame_id, None, error)
            else:
                yield RenderFrame(response.frame_id, decode_images(response.images), None)

