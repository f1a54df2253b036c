"""A connection to one drrserve."""

from __future__ import annotations

import collections
import functools
import hashlib
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar, cast

import grpc
import numpy as np
import numpy.typing as npt

from drrclient._arrays import as_array
from drrclient._proto.drr.v1 import (
    registrations_pb2,
    registrations_pb2_grpc,
    renderer_pb2,
    renderer_pb2_grpc,
    targets_pb2,
    targets_pb2_grpc,
    volumes_pb2,
    volumes_pb2_grpc,
)
from drrclient.errors import DrrError, typed
from drrclient.geometry import Intrinsics, Pose, pose_to_proto
from drrclient.options import Loss, RenderOptions, decode_images
from drrclient.recovery import (
    VOLUME_HEADER,
    Backoff,
    Feeder,
    RetryPolicy,
    SharedSource,
    missing_content,
)
from drrclient.volume import as_wire_labels, as_wire_voxels, canonical_header_bytes, header_proto

CHUNK_BYTES = 1 << 20
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])
Metadata = list[tuple[str, str]]


def _typed_errors(method: F) -> F:
    """``method`` raising the DrrError of each gRPC error it meets (errors.py)."""

    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except DrrError:
            raise
        except grpc.RpcError as error:
            raise typed(error) from None

    return cast(F, call)


class _NotRetried(Exception):
    """Carries a gRPC error out of Client._call without its retries."""

    def __init__(self, error: grpc.RpcError):
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True)
class _KeptVolume:
    """What an upload sent, to send again where the volume went missing."""

    header: volumes_pb2.VolumeHeader
    parts: tuple[memoryview, ...]


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


def _channel_credentials(tls_ca: str | None, tls_cert: str | None,
                         tls_key: str | None) -> grpc.ChannelCredentials | None:
    """TLS credentials from PEM files (the CA's; the client's certificate and key for mutual
    TLS), or None for a plaintext channel when none is given."""
    if tls_ca is None and tls_cert is None and tls_key is None:
        return None
    if (tls_cert is None) != (tls_key is None):
        raise ValueError("tls_cert and tls_key go together")
    return grpc.ssl_channel_credentials(root_certificates=_read(tls_ca),
                                        private_key=_read(tls_key),
                                        certificate_chain=_read(tls_cert))


def _prepare_upload(voxels: npt.ArrayLike, affine: npt.ArrayLike, value_kind: str,
                    labels: npt.ArrayLike | None) -> tuple[str, _KeptVolume]:
    """(id, what an upload sends) of a volume: its header and its voxel and label bytes."""
    array = as_wire_voxels(voxels)
    label_array = None if labels is None else as_wire_labels(labels, array.shape)
    parts = [array.data.cast("B")]
    if label_array is not None:
        parts.append(label_array.data.cast("B"))
    kept = _KeptVolume(header_proto(array, affine, value_kind, label_array), tuple(parts))
    digest = hashlib.sha256(canonical_header_bytes(kept.header))
    for data in kept.parts:
        digest.update(data)
    return digest.hexdigest(), kept


def _upload_chunks(volume_id: str, kept: _KeptVolume) -> Iterator[volumes_pb2.UploadVolumeChunk]:
    """The chunks of the upload of ``kept``: its header, its bytes, its digest."""
    yield volumes_pb2.UploadVolumeChunk(header=kept.header)
    for data in kept.parts:
        for start in range(0, len(data), CHUNK_BYTES):
            yield volumes_pb2.UploadVolumeChunk(data=bytes(data[start:start + CHUNK_BYTES]))
    yield volumes_pb2.UploadVolumeChunk(digest=volume_id)


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


class Gradients(NamedTuple):
    """A batch rendered with its pose gradients (a vector-Jacobian product): ``images``
    [B, C, H, W], ``parameters`` (each pose's gradient [k] in its own parameterization: rotation
    values then translation, or the 16 matrix entries of a matrix pose) and ``rt_inv``
    [B, 4, 4] (the gradient with respect to each camera->world matrix). Unpacks as a tuple."""

    images: npt.NDArray[np.float32]
    parameters: list[npt.NDArray[Any]]
    rt_inv: npt.NDArray[Any]


class Losses(NamedTuple):
    """Each pose's loss against a target, ``losses`` [B], and its gradient: ``parameters`` and
    ``rt_inv`` as in Gradients. Unpacks as a tuple."""

    losses: npt.NDArray[Any]
    parameters: list[npt.NDArray[Any]]
    rt_inv: npt.NDArray[Any]


class Jacobians(NamedTuple):
    """A batch rendered with its full Jacobians: ``images`` [B, C, H, W] and, per pose, dI/dθ as
    [C, H, W, k] (``per_pose``). Unpacks as a tuple."""

    images: npt.NDArray[np.float32]
    per_pose: list[npt.NDArray[np.float32]]


def _pose_gradients(
        response: renderer_pb2.RenderResponse) -> tuple[list[npt.NDArray[Any]], npt.NDArray[Any]]:
    """(parameter gradients [B, k], rt_inv gradients [B, 4, 4]) of a response."""
    parameters = [np.asarray(g.parameters) for g in response.pose_gradients]
    rt_inv = np.stack([np.asarray(g.rt_inv).reshape(4, 4) for g in response.pose_gradients])
    return parameters, rt_inv


def _loss_target(request: renderer_pb2.RenderRequest) -> str | None:
    """The target a loss request compares with, or None."""
    return request.loss.target_id if request.HasField("loss") else None


def _status_code(value: int) -> grpc.StatusCode:
    for code in grpc.StatusCode:
        if code.value[0] == value:
            return code
    return grpc.StatusCode.UNKNOWN


class _Connection:
    """What Client and AsyncClient hold: stubs over a channel (grpc's, or grpc.aio's), the retry
    policy, the per-call deadline, and what they uploaded, to upload it again."""

    def __init__(self, channel: Any, retry: RetryPolicy | None, keep_uploads: bool,
                 timeout: float | None):
        self._channel = channel
        self._volumes = volumes_pb2_grpc.VolumesStub(channel)
        self._renderer = renderer_pb2_grpc.RendererStub(channel)
        self._targets = targets_pb2_grpc.TargetsStub(channel)
        self._registrations = registrations_pb2_grpc.RegistrationsStub(channel)
        self._retry = retry or RetryPolicy()
        self._keep_uploads = keep_uploads
        self._timeout = timeout
        self._kept_volumes: dict[str, _KeptVolume] = {}
        self._kept_targets: dict[str, npt.NDArray[np.float32]] = {}

    def forget(self, content_id: str) -> None:
        """Stops holding the volume or target ``content_id`` for uploading again."""
        self._kept_volumes.pop(content_id, None)
        self._kept_targets.pop(content_id, None)


class Client(_Connection):
    """Uploads volumes to and renders DRRs on drrserve at ``target``: one server, or replicas
    behind a proxy that routes by volume id (deploy/haproxy). Every call that names a volume
    carries it as ``x-drr-volume-id``; UNAVAILABLE is retried with backoff, and content that went
    missing (a replica restarted without it, or a volume routed to another replica) is uploaded
    again from what the client kept, then the call is retried (``retry``; RetryPolicy() unless
    given). A call the server refuses raises the DrrError of its status (drrclient.errors:
    VolumeNotFound, InvalidRequest, Overloaded, ...) with the server's message."""

    def __init__(self, target: str = "127.0.0.1:50051", *, tls_ca: str | None = None,
                 tls_cert: str | None = None, tls_key: str | None = None,
                 token: str | None = None, retry: RetryPolicy | None = None,
                 keep_uploads: bool = True, timeout: float | None = 60.0):
        """Connects to ``target`` ("host:port"): over TLS when ``tls_ca`` (the PEM file of the CA
        that signed the server's certificate) is given, with the client certificate ``tls_cert``
        and its key ``tls_key`` (PEM files) for mutual TLS; every call carries ``token`` (of a
        server started with ``--tokens``) as ``authorization: Bearer TOKEN``. With
        ``keep_uploads`` the client holds on to what it uploads until it deletes it or forget()
        is called, so as to upload it again when it goes missing: a copy of each target, and the
        volume's arrays themselves where they are already in wire layout (contiguous
        little-endian), which the caller must then not change while the client holds them.
        ``timeout`` (seconds; None for none) is the deadline of each attempt of a unary call
        (renders, losses, target uploads, get, list, delete); volume uploads and streams, whose
        length depends on the data, have none."""
        options = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
        credentials = _channel_credentials(tls_ca, tls_cert, tls_key)
        channel = (grpc.insecure_channel(target, options=options) if credentials is None
                   else grpc.secure_channel(target, credentials, options=options))
        super().__init__(channel if token is None else grpc.intercept_channel(
            channel, _BearerToken(token)), retry, keep_uploads, timeout)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @_typed_errors
    def upload_volume(self, voxels: npt.ArrayLike, affine: npt.ArrayLike, value_kind: str = "hu",
                      labels: npt.ArrayLike | None = None) -> str:
        """Uploads a (D, H, W) volume (x fastest) with its 4x4 voxel->world
        affine and optional label volume (class per voxel, same shape);
        returns its id. Identical uploads give the same id."""
        volume_id, kept = _prepare_upload(voxels, affine, value_kind, labels)
        self._send_volume(volume_id, kept)
        if self._keep_uploads:
            self._kept_volumes[volume_id] = kept
        return volume_id

    def _send_volume(self, volume_id: str, kept: _KeptVolume) -> None:
        """Uploads ``kept`` (whose id is ``volume_id``), retrying UNAVAILABLE."""
        self._call(volume_id, None, lambda metadata: self._volumes.Upload(
            _upload_chunks(volume_id, kept), metadata=metadata))

    def _call(self, volume_id: str | None, target_id: str | None,
              invoke: Callable[[Metadata], T]) -> T:
        """invoke(metadata), the metadata naming ``volume_id``; UNAVAILABLE retried with backoff,
        and a NOT_FOUND for the volume or the target ``target_id``, when this client holds it,
        answered by uploading it again and retrying (once for each)."""
        metadata: Metadata = [] if volume_id is None else [(VOLUME_HEADER, volume_id)]
        backoff = Backoff(self._retry)
        resent: set[str] = set()
        while True:
            try:
                return invoke(metadata)
            except grpc.RpcError as error:
                if not (self._resend_missing(error.code(), error.details() or "", volume_id,
                                             target_id, resent) or backoff.wait_after(error)):
                    raise

    def _resend_missing(self, code: grpc.StatusCode, message: str, volume_id: str | None,
                        target_id: str | None, resent: set[str]) -> bool:
        """Uploads again what a NOT_FOUND says is missing, if this client holds it and has not
        sent it again for this call yet (``resent``); True when it did."""
        kind = missing_content(code, message)
        content_id = volume_id if kind == "volume" else target_id if kind == "target" else None
        if content_id is None or content_id in resent:
            return False
        if kind == "volume" and content_id in self._kept_volumes:
            self._send_volume(content_id, self._kept_volumes[content_id])
        elif kind == "target" and content_id in self._kept_targets:
            self._send_target(self._kept_targets[content_id], volume_id)
        else:
            return False
        resent.add(content_id)
        return True

    @_typed_errors
    def get_volume(self, volume_id: str) -> volumes_pb2.VolumeInfo:
        info: volumes_pb2.VolumeInfo = self._call(
            volume_id, None, lambda metadata: self._volumes.Get(
                volumes_pb2.GetVolumeRequest(volume_id=volume_id), metadata=metadata,
                timeout=self._timeout))
        return info

    @_typed_errors
    def list_volumes(self) -> Sequence[volumes_pb2.VolumeInfo]:
        response: volumes_pb2.ListVolumesResponse = self._call(
            None, None, lambda metadata: self._volumes.List(
                volumes_pb2.ListVolumesRequest(), metadata=metadata, timeout=self._timeout))
        return list(response.volumes)

    @_typed_errors
    def delete_volume(self, volume_id: str) -> None:
        """Deletes the volume (this client's ownership of it) and stops holding it."""
        backoff = Backoff(self._retry)
        retried = False
        while True:
            try:
                self._volumes.Delete(volumes_pb2.DeleteVolumeRequest(volume_id=volume_id),
                                     metadata=[(VOLUME_HEADER, volume_id)],
                                     timeout=self._timeout)
                break
            except grpc.RpcError as error:
                # A retry that finds nothing: the first attempt deleted it, its answer was cut.
                if retried and error.code() == grpc.StatusCode.NOT_FOUND:
                    break
                if not backoff.wait_after(error):
                    raise
                retried = True
        self.forget(volume_id)

    @_typed_errors
    def upload_target(self, image: npt.ArrayLike, volume_id: str | None = None) -> str:
        """Stores a 2-D target image (H, W) for loss requests; returns its id. Behind a proxy,
        ``volume_id`` (the volume it will be compared with) routes it to that volume's replica;
        without it a loss call that finds the target missing there uploads it again."""
        array = np.ascontiguousarray(as_array(image, dtype="<f4"))
        if array.ndim != 2:
            raise ValueError(f"a target is one (H, W) image, got shape {array.shape}")
        target_id = self._send_target(array, volume_id)
        if self._keep_uploads:
            self._kept_targets[target_id] = array.copy()  # (the caller may reuse its buffer)
        return target_id

    def _send_target(self, array: npt.NDArray[np.float32], volume_id: str | None) -> str:
        request = targets_pb2.UploadTargetRequest(height=array.shape[0], width=array.shape[1],
                                                  pixels=array.tobytes())
        info: targets_pb2.TargetInfo = self._call(
            volume_id, None, lambda metadata: self._targets.Upload(
                request, metadata=metadata, timeout=self._timeout))
        return info.target_id

    def _render(self, request: renderer_pb2.RenderRequest) -> renderer_pb2.RenderResponse:
        """The Render call of ``request``, as _call makes it."""
        response: renderer_pb2.RenderResponse = self._call(
            request.volume_id, _loss_target(request),
            lambda metadata: self._renderer.Render(request, metadata=metadata,
                                                   timeout=self._timeout))
        return response

    @_typed_errors
    def loss_and_grad(
            self, volume_id: str, target_id: str, poses: Iterable[Pose | npt.ArrayLike],
            intrinsics: Intrinsics | Sequence[Intrinsics] = Intrinsics(), loss: Loss = Loss(),
            options: RenderOptions = RenderOptions(),
    ) -> Losses:
        """The loss of each pose's DRR against the target and its gradient (Losses: losses [B],
        parameter gradients [B, k] in each pose's own parameterization, rt_inv gradients
        [B, 4, 4]). A registration step is this one call; no image crosses the wire."""
        request = self.render_request(volume_id, poses, intrinsics, options)
        request.loss.CopyFrom(loss.to_proto(target_id))
        response = self._render(request)
        return Losses(np.asarray(response.losses), *_pose_gradients(response))

    @_typed_errors
    def run_registration(
            self, request: registrations_pb2.RegisterRequest,
            on_step: Callable[[registrations_pb2.RegisterStep], None] | None = None,
            timeout: float | None = None) -> registrations_pb2.RegisterResult:
        """Runs the registration ``request`` on the server (drrclient.registration.register builds
        it) and returns its result; ``on_step`` hears each iteration the server streams (the
        latest one whenever the client is ready: the result holds them all). ``timeout``
        (seconds) bounds the whole registration; None for none. Retried from the start while no
        iteration was heard yet (UNAVAILABLE, or a volume or target to upload again)."""
        heard = False

        def run(metadata: Metadata) -> registrations_pb2.RegisterResult:
            nonlocal heard
            stream = self._registrations.Register(request, metadata=metadata, timeout=timeout)
            try:
                for message in stream:
                    if message.HasField("result"):
                        result: registrations_pb2.RegisterResult = message.result
                        return result
                    heard = True
                    if on_step is not None:
                        on_step(message.step)
            except grpc.RpcError as error:
                if heard:  # iterations were delivered: not run again from the start
                    raise _NotRetried(error) from None
                raise
            finally:
                stream.cancel()  # the server stops at once should on_step raise
            raise DrrError(grpc.StatusCode.INTERNAL,
                           "the registration stream ended without a result")

        try:
            return self._call(request.volume_id, request.loss.target_id, run)
        except _NotRetried as stop:
            raise stop.error from None

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

    @_typed_errors
    def render(self, volume_id: str, poses: Iterable[Pose | npt.ArrayLike],
               intrinsics: Intrinsics | Sequence[Intrinsics] = Intrinsics(),
               options: RenderOptions = RenderOptions()) -> npt.NDArray[np.float32]:
        """Renders a batch of poses; returns float32 images [B, C, H, W]."""
        request = self.render_request(volume_id, poses, intrinsics, options)
        response = self._render(request)
        return decode_images(response.images)

    @_typed_errors
    def render_with_gradients(
            self, volume_id: str, poses: Iterable[Pose | npt.ArrayLike], upstream: npt.ArrayLike,
            intrinsics: Intrinsics | Sequence[Intrinsics] = Intrinsics(),
            options: RenderOptions = RenderOptions(),
    ) -> Gradients:
        """Renders a batch and the pose gradients of sum(upstream * images) (a vector-Jacobian
        product): Gradients (images [B, C, H, W], parameter gradients [B, k] in each pose's own
        parameterization (the 16 matrix entries for matrix poses), rt_inv gradients [B, 4, 4])."""
        request = self.render_request(volume_id, poses, intrinsics, options)
        weights = np.ascontiguousarray(as_array(upstream, dtype="<f4"))
        request.gradient.upstream = weights.tobytes()
        response = self._render(request)
        return Gradients(decode_images(response.images), *_pose_gradients(response))

    @_typed_errors
    def jacobians(
            self, volume_id: str, poses: Iterable[Pose | npt.ArrayLike],
            intrinsics: Intrinsics | Sequence[Intrinsics] = Intrinsics(),
            options: RenderOptions = RenderOptions(),
    ) -> Jacobians:
        """Renders a batch and the full Jacobian of every image with respect to each pose's own
        parameters: Jacobians (images [B, C, H, W], [dI/dθ of each pose as [C, H, W, k]])."""
        request = self.render_request(volume_id, poses, intrinsics, options)
        request.jacobian = True
        response = self._render(request)
        images = decode_images(response.images)
        shape = images.shape[1:]
        jacobians = [np.frombuffer(g.jacobian, dtype="<f4").reshape(*shape, -1)
                     for g in response.pose_gradients]
        return Jacobians(images, jacobians)

    def render_stream(self, requests: Iterable[renderer_pb2.RenderRequest]) -> Iterator[RenderFrame]:
        """Streams requests (each with its frame_id); yields every frame's answer in order. A bad
        frame yields its error; the stream goes on. The stream is routed by its first frame's
        volume (all its frames should name it). Should the stream break (UNAVAILABLE: its replica
        went away) or a frame find its volume or target missing while this client holds it, the
        missing content is uploaded again and a new stream resumes from the first unanswered
        frame (retried with backoff as ``retry`` says). A stream that fails as a whole raises the
        DrrError of its status."""
        try:
            yield from self._render_stream(requests)
        except DrrError:
            raise
        except grpc.RpcError as error:
            raise typed(error) from None

    def _render_stream(self, requests: Iterable[renderer_pb2.RenderRequest]) -> Iterator[RenderFrame]:
        """render_stream, raising gRPC's errors."""
        source = iter(requests)
        first = next(source, None)
        if first is None:
            return
        metadata = [(VOLUME_HEADER, first.volume_id)]
        shared = SharedSource(itertools.chain([first], source))
        pending: collections.deque[renderer_pb2.RenderRequest] = collections.deque()
        backoff = Backoff(self._retry)
        resent: set[str] = set()
        while True:
            feeder = Feeder(shared, pending)
            call = self._renderer.RenderStream(feeder, metadata=metadata)
            try:
                for response in call:
                    request = pending[0]  # popped once its answer is delivered
                    code = _status_code(response.status.code)
                    if self._resend_missing(code, response.status.message, request.volume_id,
                                            _loss_target(request), resent):
                        break  # resume from this frame
                    if code == grpc.StatusCode.UNAVAILABLE and backoff.wait_after_code(code):
                        break  # refused by a replica that drains: resume from this frame
                    pending.popleft()
                    if code != grpc.StatusCode.OK:
                        error = FrameError(response.frame_id, code, response.status.message)
                        yield RenderFrame(response.frame_id, None, error)
                    else:
                        # Each recovery is owed only to failures since the last good frame.
                        backoff = Backoff(self._retry)
                        resent.clear()
                        yield RenderFrame(response.frame_id, decode_images(response.images), None)
                else:
                    return  # every frame answered
            except grpc.RpcError as error:
                if not backoff.wait_after(error):
                    raise
            finally:
                feeder.stop()
                call.cancel()
            # A new stream: first the frames sent and not answered, then the rest.
            shared.resume(pending)

