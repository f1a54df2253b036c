"""The chest CT through the real server, against the independent renderer."""

import numpy as np

import reference
from drrclient import Intrinsics, Pose, RenderOptions, volume_id


def test_chest_ct_reference_pose_matches_independent_renderer(client, chest):
    voxels, affine = chest
    assert voxels.shape == (133, 512, 512)
    vid = client.upload_volume(voxels, affine)
    assert vid == volume_id(voxels, affine)

    images = client.render(vid, [Pose(rotation=(0, 0, 0), translation=(0, 850, 0))])
    assert images.shape == (1, 1, 200, 200) and images.dtype == np.float32
    image = images[0, 0]

    mu = reference.hu_to_mu(voxels)
    center = reference.volume_center(voxels.shape, affine)
    expected = reference.render(
        mu, affine, reference.make_rt_inv((0, 0, 0), (0, 850, 0), "AP", center),
        reference.make_k_inv(1020, 2.0, 2.0, 0, 0, 200, 200), 1020, 200, 200)
    relative = np.abs(image - expected).max() / np.abs(expected).max()
    assert relative < 1e-4, relative

    # It looks like an AP chest radiograph: the spine is a bright vertical band
    # in the middle, the lungs either side of it are dark.
    spine = image[60:140, 95:105].mean()
    lungs = np.concatenate([image[60:120, 40:70], image[60:120, 130:160]]).mean()
    assert spine > 1.5 * lungs


def test_other_poses_and_intrinsics_match_independent_renderer(client, chest):
    voxels, affine = chest
    vid = client.upload_volume(voxels, affine)
    # Subsampled volume is not needed: a small detector keeps this fast.
    intrinsics = Intrinsics(sdd=1000, delx=4.0, dely=3.0, x0=10.0, y0=-6.0, height=48, width=64)
    pose = Pose(rotation=(25, -10, 40), translation=(15, -800, -30), orientation="PA")
    image = client.render(vid, [pose], intrinsics, RenderOptions(n_samples=300))[0, 0]
    center = reference.volume_center(voxels.shape, affine)
    expected = reference.render(
        reference.hu_to_mu(voxels), affine,
        reference.make_rt_inv((25, -10, 40), (15, -800, -30), "PA", center),
        reference.make_k_inv(1000, 4.0, 3.0, 10.0, -6.0, 48, 64), 1000, 48, 64, n_samples=300)
    assert np.abs(image - expected).max() / np.abs(expected).max() < 1e-4
