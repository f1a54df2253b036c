"""The PyTorch op (runs where torch is installed; the CI venv has no torch)."""

import numpy as np
import pytest

from conftest import small_volume
from drrclient import Intrinsics, RenderOptions

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
