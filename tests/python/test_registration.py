"""Registration through the real server, its loop on the server and on the client: nanodrr's
tutorial problem on the chest CT (design.md §8 camera at 100 x 100 pixels of 4 mm and 250
samples, to keep CI fast; bench/ runs the full-size case)."""

import time

import numpy as np
import pytest

import reference
from conftest import CHEST
from drrclient import (
    DeadlineExceeded,
    Intrinsics,
    InvalidRequest,
    Loss,
    Pose,
    RenderOptions,
    TargetNotFound,
    VolumeNotFound,
    load_nifti,
)
from drrclient.registration import (
    Optimizer,
    euler_to_rotation_vector,
    register,
    register_on_server,
)
from test_metrics import parse, scrape

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


def tutorial_problem(client, options=OPTIONS):
    """The chest CT, a target rendered at the reference pose, and nanodrr's tutorial start."""
    if not CHEST.exists():
        pytest.skip(f"{CHEST} is absent")
    voxels, affine = load_nifti(str(CHEST))
    vid = client.upload_volume(voxels, affine)
    target = client.render(vid, [Pose(rotation=(0, 0, 0), translation=(0, 850, 0))], CAMERA,
                           options)[0, 0]
    return vid, client.upload_target(target), euler_to_rotation_vector(
        (-0.1303, 0.3461, -0.7852), "ZXY")


@pytest.mark.parametrize("options", [OPTIONS, RenderOptions(n_samples=250, sampling="clipped")],
                         ids=["segment", "clipped"])
def test_registers_nanodrrs_tutorial_start_pose_within_100_iterations(client, options):
    vid, tid, start = tutorial_problem(client, options)
    result = register(client, vid, tid, start, (-11.86, 828.81, -24.46), CAMERA, Loss(), options,
                      lr_rotation=5e-2, lr_translation=1e1, iterations=100, stop_at=0.999)
    assert result.converged, result.losses[-5:]
    assert result.losses[-1] >= 0.999
    assert np.linalg.norm(result.rotation) < 0.02          # radians
    assert np.abs(result.translation - [0, 850, 0]).max() < 3.0  # mm


def test_the_server_loop_takes_the_client_loops_steps(client):
    vid, tid, start = tutorial_problem(client)
    runs = {on: register(client, vid, tid, start, (-11.86, 828.81, -24.46), CAMERA, Loss(),
                         OPTIONS, iterations=100, stop_at=0.999, on=on)
            for on in ("server", "client")}
    server, local = runs["server"], runs["client"]
    assert server.converged and local.converged
    assert len(server.losses) == len(local.losses)
    np.testing.assert_allclose(server.losses, local.losses, atol=1e-5)
    np.testing.assert_allclose(server.translation, local.translation, atol=1e-2)


def test_the_server_registers_coarse_to_fine_from_the_best_of_several_starts(client):
    vid, tid, start = tutorial_problem(client)
    starts = [Pose(rotation=-start, translation=(40, 800, 40), parameterization="so3_log"),
              Pose(rotation=start, translation=(-11.86, 828.81, -24.46),
                   parameterization="so3_log")]
    heard = []
    found = register_on_server(
        client, vid, tid, starts, CAMERA, Loss(), OPTIONS,
        Optimizer(lr_rotation=5e-2, lr_translation=1e1, iterations=60, stop_at=0.999),
        scales=(4, 2, 1), on_step=lambda i, scale, losses, best: heard.append((i, scale)))
    assert found.start == 1 and found.loss >= 0.999, found.stopped_by
    assert found.stopped_by == "reached_stop_at"
    assert found.losses.shape == (found.iterations, 2)
    assert list(dict.fromkeys(found.scales)) == [4, 2, 1]
    assert np.linalg.norm(found.parameters[:3]) < 0.02
    assert np.abs(found.parameters[3:] - [0, 850, 0]).max() < 3.0
    assert found.pose.parameterization == "so3_log"
    # Progress came in order, the last iteration among it.
    assert heard and [i for i, _ in heard] == sorted(i for i, _ in heard)
    assert heard[-1][0] == found.iterations - 1


def test_the_server_refuses_a_bad_registration_naming_the_field(client):
    vid, tid, start = tutorial_problem(client)
    pose = Pose(rotation=start, translation=(0, 850, 0), parameterization="so3_log")
    with pytest.raises(InvalidRequest, match="scales"):
        register_on_server(client, vid, tid, [pose], CAMERA, scales=(3,))
    with pytest.raises(InvalidRequest, match="optimizer.plateau_factor"):
        register_on_server(client, vid, tid, [pose], CAMERA, optimizer=Optimizer(
            plateau_factor=2))
    with pytest.raises(InvalidRequest, match=r"starts\[0\].translation"):
        register_on_server(client, vid, tid, [Pose(translation=(0, 1e300, 0))], CAMERA)
    with pytest.raises(TargetNotFound):
        register_on_server(client, vid, "0" * 64, [pose], CAMERA)
    with pytest.raises(VolumeNotFound):
        register_on_server(client, "0" * 64, tid, [pose], CAMERA)


def test_a_registration_ends_with_its_deadline_or_its_client(server, client):
    vid, tid, start = tutorial_problem(client)
    pose = Pose(rotation=start, translation=(-11.86, 828.81, -24.46), parameterization="so3_log")
    endless = Optimizer(iterations=10000, patience=10000)
    with pytest.raises(DeadlineExceeded):
        register_on_server(client, vid, tid, [pose], CAMERA, optimizer=endless, timeout=1.0)

    class Enough(Exception):
        pass

    def stop(iteration, scale, losses, best):
        if iteration >= 2:
            raise Enough

    with pytest.raises(Enough):
        register_on_server(client, vid, tid, [pose], CAMERA, optimizer=endless, on_step=stop)
    # Both stopped on the server, at their next iteration, and it goes on serving.
    def ended() -> float:
        return sum(value for (name, labels), value in parse(scrape(server)).items()
                   if name == "drr_requests_total" and 'method="Register"' in labels
                   and ('"CANCELLED"' in labels or '"DEADLINE_EXCEEDED"' in labels))

    until = time.monotonic() + 10
    while ended() < 2:
        assert time.monotonic() < until, scrape(server)
        time.sleep(0.1)
    assert client.render(vid, [Pose()], CAMERA, OPTIONS).shape == (1, 1, 100, 100)


def test_mutual_information_peaks_at_the_true_pose_whatever_the_contrast(client):
    vid, tid, _ = tutorial_problem(client)
    target = client.render(vid, [Pose(rotation=(0, 0, 0), translation=(0, 850, 0))], CAMERA,
                           OPTIONS)[0, 0]
    inverted = client.upload_target(10.0 - 2.0 * target)
    mi = Loss(kind="mutual_information", bins=24)
    moved = Pose(rotation=(5, 2, -3), translation=(4, 845, -2))
    losses, grads, _ = client.loss_and_grad(vid, inverted, [Pose(), moved], CAMERA, mi, OPTIONS)
    assert losses[0] > losses[1] > 0
    assert np.all(np.isfinite(grads)) and np.abs(grads[1]).max() > 0
    ncc, _, _ = client.loss_and_grad(vid, inverted, [Pose()], CAMERA, Loss(), OPTIONS)
    assert ncc[0] == pytest.approx(-1.0, abs=1e-5)  # what NCC makes of it
    with pytest.raises(InvalidRequest, match="loss.bins"):
        client.loss_and_grad(vid, tid, [Pose()], CAMERA, Loss(kind="mutual_information", bins=4),
                             OPTIONS)
