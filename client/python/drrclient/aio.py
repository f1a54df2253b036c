"""drrclient for asyncio (grpc.aio): Client's calls as coroutines, and navigation as an async
iterator over a LATEST-mode stream (a newer pose supersedes the ones the server has not started).
Retries UNAVAILABLE with backoff and uploads again a volume or target it uploaded that went
missing, as Client does; a stream that breaks is not resumed (Client.render_stream resumes)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Sequence,
)
from typing import TypeVar

import grpc
import grpc.aio
import numpy as np
import numpy.typing as npt

from drrclient._arrays import as_array
from drrclient._proto.drr.v1 import (
    renderer_pb2,
    targets_pb2,
    volumes_pb2,
)
from drrclient.client import (
    Client,
    FrameError,
    Gradients,
    Jacobians,
    Losses,
    RenderFrame,
    _channel_credentials,
    _Connection,
    _KeptVolume,
    _loss_target,
    _pose_gradients,
    _prepare_upload,
    _status_code,
    _upload_chunks,
)
from drrclient.errors import DrrError, error_for, typed
from drrclient.geometry import Intrinsics, Pose
from drrclient.options import Loss, RenderOptions, decode_images
from drrclient.recovery import VOLUME_HEADER, Backoff, RetryPolicy, missing_content

T = TypeVar("T")
Metadata = list[tuple[str, str]]


class AsyncClient(_Connection):
    """Client for asyncio: the same connection options, retries, re-uploads, errors
    (drrclient.errors) and per-call ``timeout``; use it as ``async with AsyncClient(...) as c``."""

    def __init__(self, target: str = "127.0.0.1:50051", *, tls_ca: str | None = None,
                 tls_cert: str | None = None, tls_key: str | None = None,
                 token: str | None = None, retry: RetryPolicy | None = None,
                 keep_uploads: bool = True, timeout: float | None = 60.0):
        """As Client's: TLS from PEM files, ``token`` as ``authorization: Bearer TOKEN``,
        ``retry``, ``keep_uploads`` and ``timeout`` (seconds per attempt of a unary call)."""
        options = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
        credentials = _channel_credentials(tls_ca, tls_cert, tls_key)
        super().__init__(
            grpc.aio.insecure_channel(target, options=options) if credentials is None
            else grpc.aio.secure_channel(target, credentials, options=options),
            retry, keep_uploads, timeout)
        self._auth: Metadata = [] if token is None else [("authorization", f"Bearer {token}")]

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _metadata(self, volume_id: str | None) -> Metadata:
        return self._auth + ([] if volume_id is None else [(VOLUME_HEADER, volume_id)])

    async def _call(self, volume_id: str | None, target_id: str | None,
                    invoke: Callable[[Metadata], Awaitable[T]]) -> T:
        """await invoke(metadata) as Client._call does it, raising the DrrError of a failure."""
        backoff = Backoff(self._retry)
        resent: set[str] = set()
        while True:
            try:
                return await invoke(self._metadata(volume_id))
            except grpc.RpcError as error:
                if await self._resend_missing(error.code(), error.details() or "", volume_id,
                                              target_id, resent):
                    continue
                delay = backoff.delay_after(error.code())
                if delay is None:
                    raise typed(error) from None
                await asyncio.sleep(delay)

    async def _resend_missing(self, code: grpc.StatusCode, message: str, volume_id: str | None,
                              target_id: str | None, resent: set[str]) -> bool:
        """As Client._resend_missing."""
        kind = missing_content(code, message)
        content_id = volume_id if kind == "volume" else target_id if kind == "target" else None
        if content_id is None or content_id in resent:
            return False
        if kind == "volume" and content_id in self._kept_volumes:
            await self._send_volume(content_id, self._kept_volumes[content_id])
        elif kind == "target" and content_id in self._kept_targets:
            await self._send_target(self._kept_targets[content_id], volume_id)
        else:
            return False
        resent.add(content_id)
        return True

    async def upload_volume(self, voxels: npt.ArrayLike, affine: npt.ArrayLike,
                            value_kind: str = "hu", labels: npt.ArrayLike | None = None) -> str:
        """As Client.upload_volume."""
        volume_id, kept = _prepare_upload(voxels, affine, value_kind, labels)
        await self._send_volume(volume_id, kept)
        if self._keep_uploads:
            self._kept_volumes[volume_id] = kept
        return volume_id

    async def _send_volume(self, volume_id: str, kept: _KeptVolume) -> None:
        await self._call(volume_id, None, lambda metadata: self._volumes.Upload(
            _upload_chunks(volume_id, kept), metadata=metadata))

    async def upload_target(self, image: npt.ArrayLike, volume_id: str | None = None) -> str:
        """As Client.upload_target."""
        array = np.ascontiguousarray(as_array(image, dtype="<f4"))
        if array.ndim != 2:
            raise ValueError(f"a target is one (H, W) image, got shape {array.shape}")
        target_id = await self._send_target(array, volume_id)
        if self._keep_uploads:
            self._kept_targets[target_id] = array.copy()
        return target_id

    async def _send_target(self, array: npt.NDArray[np.float32], volume_id: str | None) -> str:
        request = targets_pb2.UploadTargetRequest(height=array.shape[0], width=array.shape[1],
                                                  pixels=array.tobytes())
        info: targets_pb2.TargetInfo = await self._call(
            volume_id, None, lambda metadata: self._targets.Upload(
                request, metadata=metadata, timeout=self._timeout))
        return info.target_id

    async def get_volume(self, volume_id: str) -> volumes_pb2.VolumeInfo:
        info: volumes_pb2.VolumeInfo = await self._call(
            volume_id, None, lambda metadata: self._volumes.Get(
                volumes_pb2.GetVolumeRequest(volume_id=volume_id), metadata=metadata,
                timeout=self._timeout))
        return info

    async def list_volumes(self) -> Sequence[volumes_pb2.VolumeInfo]:
        response: volumes_pb2.ListVolumesResponse = await self._call(
            None, None, lambda metadata: self._volumes.List(
                volumes_pb2.ListVolumesRequest(), metadata=metadata, timeout=self._timeout))
        return list(response.volumes)

    async def delete_volume(self, volume_id: str) -> None:
        """As Client.delete_volume: UNAVAILABLE retried, a NOT_FOUND on a retry taken as done
        (the first attempt deleted it, its answer was cut); never uploads it again."""
        backoff = Backoff(self._retry)
        retried = False
        while True:
            try:
                await self._volumes.Delete(volumes_pb2.DeleteVolumeRequest(volume_id=volume_id),
                                           metadata=self._metadata(volume_id),
                                           timeout=self._timeout)
                break
            except grpc.RpcError as error:
                if retried and error.code() == grpc.StatusCode.NOT_FOUND:
                    break
                delay = backoff.delay_after(error.code())
                if delay is None:
                    raise typed(error) from None
                await asyncio.sleep(delay)
                retried = True
        self._kept_volumes.pop(volume_id, None)

    async def _render(self, request: renderer_pb2.RenderRequest) -> renderer_pb2.RenderResponse:
        response: renderer_pb2.RenderResponse = await self._call(
            request.volume_id, _loss_target(request), lambda metadata: self._renderer.Render(
                request, metadata=metadata, timeout=self._timeout))
        return response

    async def render(self, volume_id: str, poses: Iterable[Pose | npt.ArrayLike],
                     intrinsics: Intrinsics | Sequence[Intrinsics] = Intrinsics(),
                     options: RenderOptions = RenderOptions()) -> npt.NDArray[np.float32]:
        """As Client.render: images [B, C, H, W]."""
        response = await self._render(Client.render_request(volume_id, poses, intrinsics, options))
        return decode_images(response.images)

    async def render_with_gradients(
            self, volume_id: str, poses: Iterable[Pose | npt.ArrayLike], upstream: npt.ArrayLike,
            intrinsics: Intrinsics | Sequence[Intrinsics] = Intrinsics(),
            options: RenderOptions = RenderOptions()) -> Gradients:
        """As Client.render_with_gradients."""
        request = Client.render_request(volume_id, poses, intrinsics, options)
        request.gradient.upstream = np.ascontiguousarray(as_array(upstream, dtype="<f4")).tobytes()
        response = await self._render(request)
        return Gradients(decode_images(response.images), *_pose_gradients(response))

    async def jacobians(
            self, volume_id: str, poses: Iterable[Pose | npt.ArrayLike],
            intrinsics: Intrinsics | Sequence[Intrinsics] = Intrinsics(),
            options: RenderOptions = RenderOptions()) -> Jacobians:
        """As Client.jacobians."""
        request = Client.render_request(volume_id, poses, intrinsics, options)
        request.jacobian = True
        response = await self._render(request)
        images = decode_images(response.images)
        return Jacobians(images, [np.frombuffer(g.jacobian, dtype="<f4").reshape(*images.shape[1:], -1)
                                  for g in response.pose_gradients])

    async def loss_and_grad(
            self, volume_id: str, target_id: str, poses: Iterable[Pose | npt.ArrayLike],
            intrinsics: Intrinsics | Sequence[Intrinsics] = Intrinsics(), loss: Loss = Loss(),
            options: RenderOptions = RenderOptions()) -> Losses:
        """As Client.loss_and_grad."""
        request = Client.render_request(volume_id, poses, intrinsics, options)
        request.loss.CopyFrom(loss.to_proto(target_id))
        response = await self._render(request)
        return Losses(np.asarray(response.losses), *_pose_gradients(response))

    async def render_stream(
            self, requests: AsyncIterable[renderer_pb2.RenderRequest],
    ) -> AsyncGenerator[RenderFrame, None]:
        """Streams ``requests`` (the first one's volume routes the stream, as in Client); yields
        every frame's answer in order, a bad or superseded frame's error in that frame. A stream
        that fails as a whole raises the DrrError of its status; should ``requests`` raise, the
        stream ends there (the frames sent are answered first) and its exception is raised."""
        source = requests.__aiter__()
        try:
            first = await source.__anext__()
        except StopAsyncIteration:
            return
        # grpc.aio would swallow an exception of the request iterator and cancel the call.
        failed: list[Exception] = []

        async def frames() -> AsyncIterator[renderer_pb2.RenderRequest]:
            yield first
            try:
                async for request in source:
                    yield request
            except Exception as error:  # raised to the caller once the stream is done
                failed.append(error)

        call = self._renderer.RenderStream(frames(), metadata=self._metadata(first.volume_id))
        try:
            async for response in call:
                code = _status_code(response.status.code)
                if code == grpc.StatusCode.OK:
                    yield RenderFrame(response.frame_id, decode_images(response.images), None)
                else:
                    yield RenderFrame(response.frame_id, None,
                                      FrameError(response.frame_id, code, response.status.message))
        except DrrError:
            raise
        except grpc.RpcError as error:
            raise typed(error) from None
        finally:
            call.cancel()
        if failed:
            raise failed[0]

    async def navigate(self, volume_id: str, poses: AsyncIterable[Pose | npt.ArrayLike],
                       intrinsics: Intrinsics = Intrinsics(),
                       options: RenderOptions = RenderOptions(),
                       ) -> AsyncGenerator[RenderFrame, None]:
        """Renders a pose at a time as the caller's ``poses`` produce them, over one LATEST-mode
        stream: a pose that arrives while older ones still wait supersedes them, so the images
        keep up with the newest pose. Yields the frames rendered (frame ids count the poses from
        1), skipping the superseded ones; another frame's error raises its DrrError."""
        counter = itertools.count(1)

        async def requests() -> AsyncIterator[renderer_pb2.RenderRequest]:
            async for pose in poses:
                request = Client.render_request(volume_id, [pose], intrinsics, options,
                                                frame_id=next(counter))
                request.stream_mode = renderer_pb2.STREAM_MODE_LATEST
                yield request

        stream = self.render_stream(requests())
        try:
            async for frame in stream:
                if frame.error is None:
                    yield frame
                elif frame.error.code != grpc.StatusCode.ABORTED:  # superseded: skipped
                    raise error_for(frame.error.code, frame.error.message)
        finally:
            await stream.aclose()  # the stream ends with the caller's loop

