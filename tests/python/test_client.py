"""The Python client against the real server: uploads, batches, streams, errors."""

import hashlib
import pickle
import time
import typing

import grpc
import numpy as np
import pytest

import drrclient
import reference
from conftest import free_port, small_volume
from drr.v1 import renderer_pb2, volumes_pb2, volumes_pb2_grpc
from drrclient import Client, Intrinsics, Loss, Pose, RenderOptions, RetryPolicy, options, volume_id
from drrclient._enums import spellings

SMALL = Intrinsics(sdd=300, delx=1.5, dely=1.5, height=24, width=32)


def test_volume_id_is_computed_locally_and_uploads_deduplicate(client):
    voxels, affine = small_volume()
    vid = client.upload_volume(voxels, affine)
    assert vid == volume_id(voxels, affine)
    assert client.upload_volume(voxels.copy(), affine) == vid
    assert [v.volume_id for v in client.list_volumes()].count(vid) == 1
    info = client.get_volume(vid)
    assert list(info.header.shape) == list(voxels.shape)
    assert np.allclose(info.isocenter, reference.volume_center(voxels.shape, affine))
    # Float64 input is sent as float32, and its id says so.
    as_float = client.upload_volume(voxels.astype(np.float64), affine)
    assert as_float == volume_id(voxels.astype(np.float32), affine) != vid


def test_batches_render_each_pose_and_matrix_poses_match_euler_poses(client):
    voxels, affine = small_volume(1)
    vid = client.upload_volume(voxels, affine)
    poses = [Pose(rotation=(a, 5, -5), translation=(0, 150, 0)) for a in (0, 60, 200)]
    batch = client.render(vid, poses, SMALL)
    assert batch.shape == (3, 1, 24, 32)
    for i, pose in enumerate(poses):
        single = client.render(vid, [pose], SMALL)[0]
        np.testing.assert_array_equal(batch[i], single)
    center = reference.volume_center(voxels.shape, affine)
    matrix = reference.make_rt_inv((60, 5, -5), (0, 150, 0), "AP", center)
    from_matrix = client.render(vid, [matrix], SMALL)[0]
    np.testing.assert_allclose(from_matrix, batch[1], rtol=1e-5, atol=1e-6)
    expected = reference.render(reference.hu_to_mu(voxels), affine, matrix,
                                reference.make_k_inv(300, 1.5, 1.5, 0, 0, 24, 32), 300, 24, 32)
    assert np.abs(batch[1, 0] - expected).max() / np.abs(expected).max() < 1e-4


def test_stream_answers_every_frame_in_order_with_errors_in_band(client):
    voxels, affine = small_volume(2)
    vid = client.upload_volume(voxels, affine)
    requests = []
    for frame in range(1, 9):
        request = Client.render_request(vid, [Pose(rotation=(frame * 10, 0, 0),
                                                   translation=(0, 150, 0))], SMALL,
                                        frame_id=frame)
        if frame == 4:
            request.options.n_samples = 1
        requests.append(request)
    frames = list(client.render_stream(requests))
    assert [f.frame_id for f in frames] == list(range(1, 9))
    assert frames[3].error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "options.n_samples" in frames[3].error.message
    for frame in frames[:3] + frames[4:]:
        assert frame.error is None and frame.images.shape == (1, 1, 24, 32)
    np.testing.assert_array_equal(
        frames[0].images,
        client.render(vid, [Pose(rotation=(10, 0, 0), translation=(0, 150, 0))], SMALL))


def test_errors_carry_canonical_codes_and_name_what_is_wrong(client):
    voxels, affine = small_volume(3)
    vid = client.upload_volume(voxels, affine)
    missing = "0" * 64
    with pytest.raises(grpc.RpcError) as err:
        client.render(missing, [Pose()], SMALL)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND and missing in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        client.render(vid, [Pose(rotation=(0, float("nan"), 0))], SMALL)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "poses[0].parameterized.rotation[1]" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        client.render(vid, [Pose()], Intrinsics(height=0))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    client.delete_volume(vid)
    with pytest.raises(grpc.RpcError) as err:
        client.get_volume(vid)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_client_that_disconnects_mid_upload_stores_nothing(server, client):
    voxels, affine = small_volume(4, shape=(64, 96, 128))  # several 1 MiB chunks
    vid = volume_id(voxels, affine)
    from drrclient.volume import as_wire_voxels, header_proto

    array = as_wire_voxels(voxels)
    proceed = __import__("threading").Event()

    def chunks():
        yield volumes_pb2.UploadVolumeChunk(header=header_proto(array, affine))
        yield volumes_pb2.UploadVolumeChunk(data=array.tobytes()[: 1 << 20])
        proceed.wait(10)  # hang here until cancelled

    with grpc.insecure_channel(server.address) as channel:
        future = volumes_pb2_grpc.VolumesStub(channel).Upload.future(chunks())
        import time

        time.sleep(0.3)
        future.cancel()
        proceed.set()
        assert future.cancelled()
    assert vid not in [v.volume_id for v in client.list_volumes()]
    assert client.upload_volume(voxels, affine) == vid  # the server still serves


def test_health_is_served(server):
    with grpc.insecure_channel(server.address) as channel:
        check = channel.unary_unary("/grpc.health.v1.Health/Check")
        for service in (b"", b"drr.v1.Renderer", b"drr.v1.Volumes"):
            request = b"\n" + bytes([len(service)]) + service if service else b""
            assert check(request, timeout=5) == b"\x08\x01"  # status: SERVING


def test_render_options_siddon_exp_mip_and_labels(client):
    voxels, affine = small_volume(5)
    labels = np.digitize(voxels, [-300, 500]).astype(np.uint8)  # classes 0, 1, 2
    vid = client.upload_volume(voxels, affine, labels=labels)
    assert client.get_volume(vid).classes == 3
    pose = [Pose(rotation=(20, 0, 10), translation=(0, 150, 0))]
    per_class = client.render(vid, pose, SMALL)
    assert per_class.shape == (1, 3, 24, 32)
    total = client.render(vid, pose, SMALL, RenderOptions(sum_channels=True))
    np.testing.assert_allclose(per_class.sum(axis=1, keepdims=True), total, rtol=1e-5, atol=1e-6)
    intensity = client.render(vid, pose, SMALL, RenderOptions(output="exp", sum_channels=True))
    np.testing.assert_allclose(intensity, np.exp(-total), rtol=1e-5, atol=1e-7)
    mip = client.render(vid, pose, SMALL, RenderOptions(output="mip", sum_channels=True))
    assert 0 <= mip.min() and mip.max() <= reference.hu_to_mu(voxels).max() + 1e-6
    siddon = client.render(vid, pose, SMALL, RenderOptions(renderer="siddon", sum_channels=True))
    # Both integrate the same (noisy, random) volume: pixel by pixel they differ
    # by the sampling error, over the image they agree.
    assert siddon.shape == total.shape
    assert abs(siddon.mean() - total.mean()) < 0.02 * total.mean()
    with pytest.raises(grpc.RpcError) as err:
        client.render(vid, pose, SMALL, RenderOptions(classes=[3]))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "classes" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        client.render(vid, pose, SMALL, RenderOptions(sampler="texture"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "CUDA" in err.value.details()


def test_per_pose_intrinsics_render_each_pose_with_its_camera(client):
    voxels, affine = small_volume(6)
    vid = client.upload_volume(voxels, affine)
    poses = [Pose(translation=(0, 150, 0)), Pose(rotation=(90, 0, 0), translation=(0, 150, 0))]
    cameras = [SMALL, Intrinsics(sdd=350, delx=1.2, dely=1.4, x0=3, height=24, width=32)]
    both = client.render(vid, poses, cameras)
    for i in range(2):
        np.testing.assert_array_equal(both[i], client.render(vid, [poses[i]], cameras[i])[0])
    with pytest.raises(grpc.RpcError) as err:
        client.render(vid, poses, [SMALL, Intrinsics(height=10, width=32)])
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("options", [RenderOptions(n_samples=1200), RenderOptions(renderer="siddon")],
                         ids=["trilinear", "siddon"])
def test_pose_gradients_match_central_differences_through_the_server(client, options):
    # A smooth blob, so the loss is smooth in the pose (Siddon's voxels are steps: its loss is
    # smooth only between the poses where a ray meets a voxel edge).
    z, y, x = np.mgrid[0:28, 0:30, 0:32]
    mu = (0.03 * np.exp(-((x - 14) ** 2 + (y - 16) ** 2 / 1.4 + (z - 13) ** 2 * 1.2) / 50)).astype(np.float32)
    affine = np.diag([-2.0, -2.0, 2.5, 1.0])
    vid = client.upload_volume(mu, affine, value_kind="attenuation")
    camera = Intrinsics(sdd=300, delx=2, dely=2, height=14, width=16)
    upstream = np.random.default_rng(1).uniform(0, 1, size=(1, 1, 14, 16)).astype(np.float32)
    rotation, translation = np.array([8.0, -4.0, 6.0]), np.array([2.0, 240.0, -3.0])
    images, grads, rt_inv_grads = client.render_with_gradients(
        vid, [Pose(rotation=rotation, translation=translation)], upstream, camera, options)
    assert images.shape == (1, 1, 14, 16) and grads[0].shape == (6,) and rt_inv_grads.shape == (1, 4, 4)

    def loss(rot, trans):
        rendered = client.render(vid, [Pose(rotation=rot, translation=trans)], camera, options)
        return float((upstream.astype(np.float64) * rendered).sum())

    numeric = []
    for k in range(6):
        step = np.zeros(6)
        step[k] = 0.05 if k < 3 else 0.2
        up = loss(rotation + step[:3], translation + step[3:])
        down = loss(rotation - step[:3], translation - step[3:])
        numeric.append((up - down) / (2 * step[k]))
    np.testing.assert_allclose(grads[0], numeric, atol=0.02 * np.abs(numeric).max())
    # The same request gives the same bits.
    again = client.render_with_gradients(vid, [Pose(rotation=rotation, translation=translation)],
                                         upstream, camera, options)[1]
    np.testing.assert_array_equal(again[0], grads[0])


def test_jacobians_contract_to_the_gradient(client):
    voxels, affine = small_volume(8)
    vid = client.upload_volume(voxels, affine)
    poses = [Pose(rotation=(0.1, -0.2, 0.3), translation=(1, 150, 2), parameterization="so3_log")]
    upstream = np.random.default_rng(2).normal(size=(1, 1, 24, 32)).astype(np.float32)
    gradients = client.render_with_gradients(vid, poses, upstream, SMALL)
    _, grads, _ = gradients  # named results unpack as tuples
    assert grads is gradients.parameters and gradients.rt_inv.shape == (1, 4, 4)
    result = client.jacobians(vid, poses, SMALL)
    images, jacobians = result
    np.testing.assert_array_equal(result.images, gradients.images)
    assert jacobians is result.per_pose and jacobians[0].shape == (1, 24, 32, 6)
    contracted = np.tensordot(upstream[0].astype(np.float64), jacobians[0], axes=([0, 1, 2], [0, 1, 2]))
    np.testing.assert_allclose(contracted, grads[0], rtol=1e-4, atol=1e-6 * np.abs(grads[0]).max())


def test_a_request_asks_for_one_of_gradient_loss_and_jacobian(client):
    voxels, affine = small_volume(8)
    vid = client.upload_volume(voxels, affine)
    request = client.render_request(vid, [Pose(translation=(1, 150, 2))], SMALL)
    request.jacobian = True
    request.gradient.upstream = np.ones((1, 1, 24, 32), "<f4").tobytes()
    with pytest.raises(grpc.RpcError) as err:
        client._renderer.Render(request)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "exclude each other" in (err.value.details() or "")


def test_targets_and_loss_requests_report_bad_input(client):
    voxels, affine = small_volume(10)
    vid = client.upload_volume(voxels, affine)
    with pytest.raises(grpc.RpcError) as err:
        client.loss_and_grad(vid, "e" * 64, [Pose(translation=(0, 150, 0))], SMALL)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND and "e" * 64 in err.value.details()
    wrong_size = client.upload_target(np.ones((10, 12), np.float32))
    with pytest.raises(grpc.RpcError) as err:
        client.loss_and_grad(vid, wrong_size, [Pose(translation=(0, 150, 0))], SMALL)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "10×12" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        client.upload_target(np.full((4, 4), np.nan, np.float32))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    target = client.upload_target(np.random.default_rng(0).random((24, 32)).astype(np.float32))
    with pytest.raises(grpc.RpcError) as err:
        client.loss_and_grad(vid, target, [Pose(translation=(0, 150, 0))], SMALL,
                             Loss(kind="ncc", patch_sizes=[40]))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "patch_sizes" in err.value.details()
    losses, grads, rt_inv = client.loss_and_grad(vid, target, [Pose(translation=(0, 150, 0))] * 2,
                                                 SMALL, Loss(kind="mse"))
    assert losses.shape == (2,) and losses[0] == losses[1] and rt_inv.shape == (2, 4, 4)


def test_fields_left_none_are_left_out_and_the_server_takes_its_defaults(client):
    assert Intrinsics().to_proto().ListFields() == []
    options = RenderOptions().to_proto()
    assert not options.HasField("n_samples") and options.attenuation.ListFields() == []
    assert options.renderer == options.output == options.sampler == 0  # unspecified
    pose = Pose().to_proto().parameterized
    assert not pose.HasField("convention") and not pose.rotation and not pose.translation
    loss = Loss(sigma=0).to_proto("t")
    assert loss.HasField("sigma") and loss.sigma == 0 and not loss.HasField("eps")
    voxels, affine = small_volume(21)
    vid = client.upload_volume(voxels, affine)
    bare = client.render(vid, [Pose(rotation=(5, 0, 0))])
    assert bare.shape == (1, 1, 200, 200)
    spelled_out = client.render(
        vid, [Pose(rotation=(5, 0, 0), translation=(0, 850, 0), convention="ZXY")],
        Intrinsics(sdd=1020, delx=2.0, dely=2.0, x0=0, y0=0, height=200, width=200),
        RenderOptions(n_samples=500, renderer="trilinear", output="line_integral"))
    np.testing.assert_array_equal(bare, spelled_out)


def test_enum_spellings_come_from_the_proto_in_any_case():
    with pytest.raises(ValueError, match="renderer must be one of trilinear, siddon"):
        RenderOptions(renderer="Siddon-Jacobs").to_proto()
    assert RenderOptions(renderer="SIDDON").to_proto().renderer == 2
    assert Pose(orientation="pa").to_proto().parameterized.orientation == 2
    # The typed spellings (Literal) are exactly the proto's.
    for literal, enum in [(options.Renderer, renderer_pb2.RendererKind),
                          (options.Output, renderer_pb2.Output), (options.DType, renderer_pb2.DType),
                          (options.Sampler, renderer_pb2.SamplerKind),
                          (options.LossKind, renderer_pb2.LossKind)]:
        assert typing.get_args(literal) == tuple(spellings(enum.DESCRIPTOR))


def test_a_patch_loss_with_huge_windows_is_answered_and_the_server_goes_on(client):
    voxels, affine = small_volume(22)
    vid = client.upload_volume(voxels, affine)
    camera = Intrinsics(sdd=300, delx=0.5, dely=0.5, height=400, width=400)
    target = client.upload_target(np.random.default_rng(1).random((400, 400)).astype(np.float32))
    # 201² windows of 200² pixels: 13 GB of float64 if every window were copied; patch NCC
    # sums windows with integral images in image-sized memory.
    for patch in (200, 9):
        losses, _, _ = client.loss_and_grad(vid, target, [Pose(translation=(0, 150, 0))], camera,
                                            Loss(kind="ncc", patch_sizes=[patch]),
                                            RenderOptions(n_samples=50))
        assert np.isfinite(losses).all() and -1 <= losses[0] <= 1


def test_unavailable_is_retried_with_backoff_as_many_times_as_the_policy_says():
    """Nothing listens: every attempt is UNAVAILABLE, and the last one's error comes back after
    the policy's waits (0.1 + 0.15 + 0.15 s for four attempts)."""
    with Client(f"127.0.0.1:{free_port()}",
                retry=RetryPolicy(attempts=4, initial_backoff=0.1, max_backoff=0.15)) as dead:
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as error:
            dead.get_volume("a" * 64)
        assert error.value.code() == grpc.StatusCode.UNAVAILABLE
        assert time.monotonic() - started >= 0.4
    # One attempt: no wait at all.
    with Client(f"127.0.0.1:{free_port()}", retry=RetryPolicy(attempts=1)) as once:
        started = time.monotonic()
        with pytest.raises(grpc.RpcError):
            once.get_volume("a" * 64)
        assert time.monotonic() - started < 0.4


def test_each_refusal_raises_its_own_error_carrying_the_server_message(servers, tmp_path):
    """One class per kind of refusal, each a grpc.RpcError too with the same code and details."""
    token_file = tmp_path / "tokens"
    token_file.write_text(f"alice user {hashlib.sha256(b'secret').hexdigest()}\n")
    server = servers("--max-batch", "2", "--tokens", str(token_file))
    pose = Pose(translation=(0, 150, 0))
    with Client(server.address, token="secret") as client:
        vid = client.upload_volume(*small_volume(11))
        cases = [
            (lambda: client.render("0" * 64, [pose], SMALL), drrclient.VolumeNotFound,
             grpc.StatusCode.NOT_FOUND, "0" * 64),
            (lambda: client.loss_and_grad(vid, "e" * 64, [pose], SMALL), drrclient.TargetNotFound,
             grpc.StatusCode.NOT_FOUND, "e" * 64),
            (lambda: client.render(vid, [Pose(rotation=(0, float("nan"), 0))], SMALL),
             drrclient.InvalidRequest, grpc.StatusCode.INVALID_ARGUMENT,
             "poses[0].parameterized.rotation[1]"),
            (lambda: client.render(vid, [pose] * 3, SMALL), drrclient.Overloaded,
             grpc.StatusCode.RESOURCE_EXHAUSTED, "poses (count) is 3"),
        ]
        for call, kind, code, named in cases:
            with pytest.raises(kind) as error:
                call()
            assert isinstance(error.value, drrclient.DrrError)
            assert isinstance(error.value, grpc.RpcError)
            assert error.value.code() == code and error.value.status == code
            assert named in error.value.details() and error.value.message == error.value.details()
            assert str(error.value).startswith(code.name)
            copied = pickle.loads(pickle.dumps(error.value))  # crosses process boundaries
            assert type(copied) is kind and copied.details() == error.value.details()
        assert issubclass(drrclient.VolumeNotFound, drrclient.NotFound)
    with Client(server.address) as anonymous:  # no token
        with pytest.raises(drrclient.Unauthenticated):
            anonymous.list_volumes()
    # The default deadline of each call, here far shorter than the render (a 1 µs deadline
    # raced a fast render: gRPC's deadline timer can fire after the answer).
    with Client(server.address, token="secret", timeout=1e-3) as hurried:
        with pytest.raises(drrclient.DeadlineExceeded):
            hurried.render(vid, [pose] * 2, SMALL,
                           RenderOptions(n_samples=8000, sampling="clipped"))
    with Client(f"127.0.0.1:{free_port()}", retry=RetryPolicy(attempts=1)) as dead:
        with pytest.raises(drrclient.Unavailable):
            dead.get_volume(vid)
        with pytest.raises(drrclient.Unavailable):
            list(dead.render_stream([Client.render_request(vid, [pose], SMALL)]))
