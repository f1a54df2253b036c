"""Registration through the real server: nanodrr's tutorial problem on the
chest CT (design.md §8 camera at 100 x 100 pixels of 4 mm and 250 samples, to
keep CI fast; bench/ runs the full-size case)."""

import numpy as np
import pytest

import reference
from conftest import CHEST
from drrclient import Intrinsics, Loss, Pose, RenderOptions, load_nifti
from drrclient.registration import euler_to_rotation_vector, register

CAMERA = Intrinsics(sdd=1020, delx=4.0, dely=4.0, height=100, width=100)
OPTIONS = RenderOptions(n_samples=250)


def test_euler_to_rotation_vector_matches_the_zxy_matrix():
    angles = np.array([-0.1303, 0.3461, -0.7852])
    vector = euler_to_rotation_vector(angles, "ZXY")
    theta = np.linalg.norm(vector)
    k = vector / theta
    hat = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    rodrigues = np.eye(3) + np.sin(theta) * hat + (1 - np.cos(theta)) * hat @ hat
    np.testing.assert_allclose(rodrigues, reference.euler_zxy(*np.rad2deg(angles)), atol=1e-12)


def test_loss_and_grad_agree_with_a_rendered_ncc(client):
    if not CHEST.exists():
        pytest.skip(f"{CHEST} is absent")
    voxels, affine = load_nifti(str(CHEST))
    vid = client.upload_volume(voxels, affine)
    target = client.render(vid, [Pose()], CAMERA, OPTIONS)[0, 0]
    tid = client.upload_target(target)
    assert client.upload_target(target.copy()) == tid
    moved = Pose(rotation=(5, 2, -3), translation=(4, 845, -2))
    losses, grads, _ = client.loss_and_grad(vid, tid, [Pose(), moved], CAMERA, Loss(), OPTIONS)
    assert losses[0] == pytest.approx(1.0, abs=1e-6)   # the target pose
    image = client.render(vid, [moved], CAMERA, OPTIONS)[0, 0].astype(np.float64)
    za = (image - image.mean()) / np.sqrt(image.var() + 1e-7)
    zb = (target - target.mean()) / np.sqrt(target.var() + 1e-7)
    assert losses[1] == pytest.approx((za * zb).mean(), abs=1e-5)
    assert np.abs(grads[1]).max() > 0 and len(grads[1]) == 6


def test_registers_nanodrrs_tutorial_start_pose_within_100_iterations(client):
    if not CHEST.exists():
        pytest.skip(f"{CHEST} is absent")
    voxels, affine = load_nifti(str(CHEST))
    vid = client.upload_volume(voxels, affine)
    target = client.render(vid, [Pose(rotation=(0, 0, 0), translation=(0, 850, 0))], CAMERA,
                           OPTIONS)[0, 0]
    tid = client.upload_target(target)
    start = euler_to_rotation_vector((-0.1303, 0.3461, -0.7852), "ZXY")
    result = register(client, vid, tid, start, (-11.86, 828.81, -24.46), CAMERA, Loss(), OPTIONS,
                      lr_rotation=5e-2, lr_translation=1e1, iterations=100, stop_at=0.999)
    assert result.converged, result.losses[-5:]
    assert result.losses[-1] >= 0.999
    assert np.linalg.norm(result.rotation) < 0.02          # radians
    assert np.abs(result.translation - [0, 850, 0]).max() < 3.0  # mm
