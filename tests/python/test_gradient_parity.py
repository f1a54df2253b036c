"""Pose gradients and loss values against nanodrr's autograd
(tests/parity/gradient_goldens.npz from tests/parity/make_gradient_goldens.py):
every parameterization, labels, biplane cameras, each metric, and the case of
nanodrr's own backend parity test. And against nanodrr 0.1.7's
(gradient_goldens_nanodrr_0_1_7.npz): rays clipped to the volume, whose ends
move with the pose, hard and soft labels, losses, and nanodrr's own case."""

import json

import numpy as np
import pytest

import volumes
from conftest import SHARED_DATA
from drrclient import Client, Intrinsics, Loss, Pose, RenderOptions
from test_parity import PARITY, intrinsics_of, options_of, pose_of

CASES = json.loads((PARITY / "gradient_cases.json").read_text())
GOLDENS = np.load(PARITY / "gradient_goldens.npz")
CLIPPED_CASES = json.loads((PARITY / "gradient_cases_nanodrr_0_1_7.json").read_text())
CLIPPED_GOLDENS = np.load(PARITY / "gradient_goldens_nanodrr_0_1_7.npz")

# nanodrr's bound between its backends for pose gradients (max |error| / max
# |gradient|), met on the case of its own test.
GRADIENT_BOUND = 1e-3
# On the real CT cases the goldens are float64: trilinear gradients jump at
# voxel faces, so any float32 renderer scatters around them; nanodrr's own
# float32 gradients differ from its float64 ones by up to 2.0e-3 here.
REAL_CT_GRADIENT_BOUND = 3e-3
VALUE_BOUND = 1e-4


def upstream_for(shape):
    """The upstream gradient the goldens used: sin(0.1 * pixel index + channel)."""
    b, c, h, w = shape
    pixel = np.arange(h * w).reshape(h, w)
    return np.stack([[np.sin(0.1 * pixel + k) for k in range(c)] for _ in range(b)]).astype(np.float32)


@pytest.fixture(scope="module")
def uploaded(server):
    if not (SHARED_DATA / "lidc-idri-0001.nii.gz").exists():
        pytest.skip(f"{SHARED_DATA} is absent")
    client = Client(server.address)
    voxels, affine = volumes.chest(SHARED_DATA)
    ids = {False: client.upload_volume(voxels, affine),
           True: client.upload_volume(voxels, affine, labels=volumes.tissue_labels(voxels))}
    client.close()
    return ids


def relative_error(actual, expected):
    return float(np.abs(np.asarray(actual) - expected).max() / np.abs(expected).max())


@pytest.mark.parametrize("case,goldens", [(c, GOLDENS) for c in CASES]
                         + [(c, CLIPPED_GOLDENS) for c in CLIPPED_CASES],
                         ids=[c["name"] for c in CASES + CLIPPED_CASES])
def test_matches_nanodrr_autograd(client, uploaded, case, goldens):
    vid = uploaded[bool(case.get("labels"))]
    poses = [pose_of(p) for p in case["poses"]]
    cameras = intrinsics_of(case)
    options = options_of(case)
    golden = goldens[case["name"] + "/gradients"]
    if "loss" in case:
        target = client.render(vid, [pose_of(case["target_pose"])], cameras, options)[0, 0]
        spec = case["loss"]
        loss = Loss(kind=spec["kind"], patch_sizes=spec.get("patch_sizes"),
                    patch_weights=spec.get("patch_weights"), sigma=spec.get("sigma"))
        values, gradients, _ = client.loss_and_grad(vid, client.upload_target(target), poses,
                                                    cameras, loss, options)
        expected = goldens[case["name"] + "/values"]
        assert np.abs(values - expected).max() < VALUE_BOUND * max(1.0, np.abs(expected).max())
    else:
        channels = 4 if case.get("labels") else 1
        upstream = upstream_for((len(poses), channels, 48, 64))
        _, gradients, _ = client.render_with_gradients(vid, poses, upstream, cameras, options)
    assert relative_error(np.stack(gradients), golden) < REAL_CT_GRADIENT_BOUND


@pytest.mark.parametrize("goldens,options", [
    (GOLDENS, RenderOptions(n_samples=200)),
    (CLIPPED_GOLDENS, RenderOptions(n_samples=200, sampling="clipped"))],
    ids=["nanodrr_0_1_6", "nanodrr_0_1_7"])
def test_matches_nanodrrs_own_parity_case(client, goldens, options):
    """nanodrr's tests/drr/test_fused.py pose-gradient case: a random 32^3
    volume (raw values), 16 x 16 pixels, 200 samples, float32."""
    volume = goldens["nanodrr_test/volume"]
    affine = np.eye(4)
    affine[:3, 3] = -(volume.shape[0] - 1) / 2
    vid = client.upload_volume(volume, affine, value_kind="attenuation")
    pose = Pose(rotation=(5, -3, 8), translation=(1, 80, -2), isocenter=(0, 0, 0))
    _, gradients, rt_inv = client.render_with_gradients(
        vid, [pose], goldens["nanodrr_test/upstream"],
        Intrinsics(sdd=100, delx=1, dely=1, height=16, width=16), options)
    golden = goldens["nanodrr_test/rt_inv_gradients"]
    assert relative_error(rt_inv[:, :3], golden[:, :3]) < GRADIENT_BOUND
    assert relative_error(np.stack(gradients), goldens["nanodrr_test/gradients"]) < GRADIENT_BOUND
