"""drrclient.aio.AsyncClient against the real server: the same answers as Client, typed errors,
transparent re-uploads, and navigation over a LATEST stream."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest

import drrclient
from conftest import free_port, small_volume
from drrclient import Client, Intrinsics, Loss, Pose, RetryPolicy
from drrclient.aio import AsyncClient
from test_metrics import parse, scrape

SMALL = Intrinsics(sdd=300, delx=1.5, dely=1.5, height=24, width=32)
POSE = Pose(rotation=(10, 5, -5), translation=(0, 150, 0))


def test_the_async_client_answers_as_the_client_does(server: Any) -> None:
    voxels, affine = small_volume(30)
    upstream = np.random.default_rng(1).normal(size=(1, 1, 24, 32)).astype(np.float32)
    target = np.random.default_rng(2).random((24, 32)).astype(np.float32)

    async def run() -> tuple[Any, ...]:
        async with AsyncClient(server.address) as client:
            volume = await client.upload_volume(voxels, affine)
            images = await client.render(volume, [POSE], SMALL)
            gradients = await client.render_with_gradients(volume, [POSE], upstream, SMALL)
            target_id = await client.upload_target(target, volume)
            losses = await client.loss_and_grad(volume, target_id, [POSE], SMALL, Loss("mse"))
            info = await client.get_volume(volume)
            listed = [v.volume_id for v in await client.list_volumes()]
            jacobians = await client.jacobians(volume, [POSE], SMALL)
            return volume, images, gradients, losses, info, listed, jacobians

    volume, images, gradients, losses, info, listed, jacobians = asyncio.run(run())
    assert volume == drrclient.volume_id(voxels, affine) and volume in listed
    assert list(info.header.shape) == list(voxels.shape)
    with Client(server.address) as sync:
        np.testing.assert_array_equal(images, sync.render(volume, [POSE], SMALL))
        expected = sync.render_with_gradients(volume, [POSE], upstream, SMALL)
        np.testing.assert_array_equal(gradients.parameters[0], expected.parameters[0])
        np.testing.assert_array_equal(jacobians.per_pose[0],
                                      sync.jacobians(volume, [POSE], SMALL).per_pose[0])
        target_id = sync.upload_target(target)
        expected_losses = sync.loss_and_grad(volume, target_id, [POSE], SMALL, Loss("mse"))
        np.testing.assert_array_equal(losses.losses, expected_losses.losses)


def test_refusals_are_typed_and_a_missing_volume_is_uploaded_again(server: Any) -> None:
    voxels, affine = small_volume(31)

    async def run() -> None:
        async with AsyncClient(server.address) as client:
            with pytest.raises(drrclient.VolumeNotFound) as missing:
                await client.render("0" * 64, [POSE], SMALL)
            assert "0" * 64 in missing.value.details()
            with pytest.raises(drrclient.InvalidRequest):
                await client.render(await client.upload_volume(voxels, affine),
                                    [Pose(rotation=(0, float("nan"), 0))], SMALL)
            volume = await client.upload_volume(voxels, affine)
            with Client(server.address) as other:
                other.delete_volume(volume)  # gone from the server, kept by this client
            images = await client.render(volume, [POSE], SMALL)  # uploaded again, then rendered
            assert images.shape == (1, 1, 24, 32)
        dead = AsyncClient(f"127.0.0.1:{free_port()}", retry=RetryPolicy(attempts=2,
                                                                          initial_backoff=0.01))
        async with dead:
            with pytest.raises(drrclient.Unavailable):
                await dead.list_volumes()

    asyncio.run(run())


def test_a_delete_never_uploads_again_and_a_failing_pose_source_raises_its_own_error(
        server: Any) -> None:
    voxels, affine = small_volume(33)

    async def broken_poses() -> AsyncIterator[Pose]:
        yield POSE
        yield POSE
        raise KeyError("the tracker went away")

    async def run() -> None:
        async with AsyncClient(server.address) as client:
            volume = await client.upload_volume(voxels, affine)
            with Client(server.address) as other:
                other.delete_volume(volume)
                # Kept by the async client, yet its delete does not upload it again.
                with pytest.raises(drrclient.VolumeNotFound):
                    await client.delete_volume(volume)
                assert volume not in [v.volume_id for v in other.list_volumes()]
            volume = await client.upload_volume(voxels, affine)
            frames = []
            with pytest.raises(KeyError, match="the tracker went away"):
                async for frame in client.navigate(volume, broken_poses(), SMALL):
                    frames.append(frame)
            assert frames and frames[-1].frame_id == 2  # the poses sent were answered

    asyncio.run(run())


def test_navigation_keeps_up_with_the_newest_pose(server: Any) -> None:
    """Poses come faster than the server renders them: those still waiting when a newer one
    arrives are superseded and skipped; the newest is always rendered, and every frame yielded
    is the image of its own pose."""
    voxels, affine = small_volume(32, shape=(64, 64, 64))
    camera = Intrinsics(sdd=300, delx=1.0, dely=1.0, height=96, width=96)
    angles = list(range(0, 40, 2))
    superseded = ("drr_calls_dropped_total", '{reason="superseded"}')

    async def poses() -> AsyncIterator[Pose]:
        for angle in angles:
            yield Pose(rotation=(angle, 0, 0), translation=(0, 150, 0))

    async def run(volume: str) -> list[drrclient.RenderFrame]:
        async with AsyncClient(server.address) as client:
            return [frame async for frame in client.navigate(volume, poses(), camera)]

    with Client(server.address) as sync:
        volume = sync.upload_volume(voxels, affine)
        before = parse(scrape(server))[superseded]
        frames = asyncio.run(run(volume))
        after = parse(scrape(server))[superseded]
        ids = [frame.frame_id for frame in frames]
        assert ids == sorted(ids) and ids[-1] == len(angles)
        assert len(frames) + (after - before) == len(angles)  # rendered or superseded, no other
        for frame in frames:
            pose = Pose(rotation=(angles[frame.frame_id - 1], 0, 0), translation=(0, 150, 0))
            assert frame.images is not None
            np.testing.assert_array_equal(frame.images, sync.render(volume, [pose], camera))
