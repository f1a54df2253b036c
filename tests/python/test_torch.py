"""The PyTorch op (runs where torch is installed; the CI venv has no torch)."""

import numpy as np
import pytest

from conftest import small_volume
from drrclient import Intrinsics, Pose, RenderOptions

torch = pytest.importorskip("torch")
from drrclient.torch import DRR  # noqa: E402


def test_backward_gives_the_servers_pose_gradients(client):
    voxels, affine = small_volume(9)
    vid = client.upload_volume(voxels, affine)
    camera = Intrinsics(sdd=300, delx=1.5, dely=1.5, height=24, width=32)
    drr = DRR(client, vid, camera, parameterization="so3_log", options=RenderOptions(n_samples=200))
    rotation = torch.tensor([[0.1, -0.05, 0.2]], requires_grad=True)
    translation = torch.tensor([[1.0, 150.0, -2.0]], requires_grad=True)
    images = drr(rotation, translation)
    weights = torch.from_numpy(np.random.default_rng(0).normal(size=(1, 1, 24, 32)).astype(np.float32))
    (images * weights).sum().backward()
    _, grads, _ = client.render_with_gradients(
        vid, drr.poses(rotation, translation), weights.numpy(), camera, RenderOptions(n_samples=200))
    np.testing.assert_allclose(rotation.grad.numpy()[0], grads[0][:3], rtol=1e-6)
    np.testing.assert_allclose(translation.grad.numpy()[0], grads[0][3:], rtol=1e-6)


def test_every_call_takes_torch_tensors_as_it_takes_numpy(client):
    voxels, affine = small_volume(4)
    labels = (voxels > 0).astype(np.uint8)
    # Tensors that autograd tracks, as a training loop holds them.
    tracked = {name: torch.tensor(value, dtype=torch.float64, requires_grad=True)
               for name, value in (("affine", affine), ("rotation", [0.1, -0.05, 0.2]),
                                   ("translation", [1.0, 150.0, -2.0]))}
    vid = client.upload_volume(voxels, affine, labels=labels)
    assert client.upload_volume(torch.from_numpy(voxels), tracked["affine"],
                                labels=torch.from_numpy(labels)) == vid
    camera = Intrinsics(sdd=300, delx=1.5, dely=1.5, height=12, width=16)
    options = RenderOptions(n_samples=100, sum_channels=True)
    as_numpy = Pose(rotation=[0.1, -0.05, 0.2], translation=[1.0, 150.0, -2.0],
                    parameterization="so3_log")
    as_torch = Pose(rotation=tracked["rotation"], translation=tracked["translation"],
                    parameterization="so3_log")
    images = client.render(vid, [as_numpy], camera, options)
    np.testing.assert_array_equal(client.render(vid, [as_torch], camera, options), images)
    matrix = np.eye(4)
    matrix[:3, 3] = [0.0, 150.0, 0.0]
    np.testing.assert_array_equal(
        client.render(vid, [torch.tensor(matrix, requires_grad=True)], camera, options),
        client.render(vid, [matrix], camera, options))
    upstream = np.random.default_rng(1).normal(size=images.shape).astype(np.float32)
    _, expected, _ = client.render_with_gradients(vid, [as_numpy], upstream, camera, options)
    _, actual, _ = client.render_with_gradients(
        vid, [as_torch], torch.tensor(upstream, requires_grad=True), camera, options)
    np.testing.assert_array_equal(actual[0], expected[0])
    target = images[0, 0]
    assert client.upload_target(torch.tensor(target, requires_grad=True)) == \
        client.upload_target(target)
