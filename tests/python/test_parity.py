"""drrserve against nanodrr's own images (tests/parity/goldens.npz, written by
tests/parity/make_goldens.py from nanodrr's torch backend) for every case of
tests/parity/cases.json: every parameterization, AP/PA/none, biplane and
orthographic cameras, labels, attenuation parameters, sample counts. And
against nanodrr 0.1.7 (cases_nanodrr_0_1_7.json, goldens_nanodrr_0_1_7.npz),
whose rays are clipped to the volume (sampling="clipped"), with hard and
soft labels."""

import json

import numpy as np
import pytest

import reference
import volumes  # tests/parity/volumes.py (on the path through tests/pytest.ini)
from conftest import ROOT, SHARED_DATA
from drrclient import Client, Intrinsics, Pose, RenderOptions

PARITY = ROOT / "tests" / "parity"

CASES = json.loads((PARITY / "cases.json").read_text())
GOLDENS = np.load(PARITY / "goldens.npz")
CLIPPED_CASES = json.loads((PARITY / "cases_nanodrr_0_1_7.json").read_text())
CLIPPED_GOLDENS = np.load(PARITY / "goldens_nanodrr_0_1_7.npz")

# nanodrr's own bound between its two backends.
FLOAT32_BOUND = 1e-4
# With labels, a sample within float rounding of a half-voxel boundary may go
# to the neighbouring voxel's class in one renderer and not the other (nanodrr
# rounds coordinates normalised to [-1, 1]; drrserve rounds voxel
# coordinates). Such a sample moves its value mu*step (at most about 0.15/mm *
# 2.1 mm here) between two channels of one pixel and changes nothing else.
ONE_SAMPLE = 0.15 * 2.1
LABEL_TIE_PIXELS = 1e-3

# Half precision: an image value is rounded once, by at most 2^-11 (float16)
# or 2^-8 (bfloat16) relative; stored voxels are rounded as much, but along a
# ray those errors average out (measured: 7.5e-5 and 5.7e-4 of the peak).
HALF_BOUNDS = {("float16", "image_dtype"): 2.0**-11, ("bfloat16", "image_dtype"): 2.0**-8,
               ("float16", "volume_storage"): 2e-4, ("bfloat16", "volume_storage"): 2e-3}


def relative_error(actual, expected):
    return float(np.abs(actual - expected).max() / np.abs(expected).max())


@pytest.fixture(scope="module")
def uploaded(server):
    """{(volume name, labels?): volume id}, uploaded once."""
    if not (SHARED_DATA / "lidc-idri-0001.nii.gz").exists():
        pytest.skip(f"{SHARED_DATA} is absent")
    client = Client(server.address)
    ids = {}
    for name, load in volumes.VOLUMES.items():
        voxels, affine = load(SHARED_DATA)
        ids[name, False] = client.upload_volume(voxels, affine)
        ids[name, True] = client.upload_volume(voxels, affine,
                                               labels=volumes.tissue_labels(voxels))
    client.close()
    return ids


def pose_of(spec):
    return Pose(rotation=spec["rotation"], translation=spec["translation"],
                orientation=spec.get("orientation", "AP"),
                parameterization=spec["parameterization"],
                convention=spec.get("convention") or "ZXY",
                degrees=spec.get("degrees", True), isocenter=spec.get("isocenter"))


def intrinsics_of(case):
    cameras = [Intrinsics(**c) for c in case["intrinsics"]]
    return cameras[0] if len(cameras) == 1 else cameras


def options_of(case, **overrides):
    """The case's render options: a nanodrr 0.1.7 case (named clipped_*)
    samples clipped rays."""
    fields = {k: case[k] for k in ("n_samples", "mu_water", "mu_bone", "hu_bone", "soft_labels")
              if k in case}
    if case["name"].startswith("clipped_"):
        fields["sampling"] = "clipped"
    fields.update(overrides)
    return RenderOptions(**fields)


@pytest.mark.parametrize("case,golden", [(c, GOLDENS[c["name"]]) for c in CASES]
                         + [(c, CLIPPED_GOLDENS[c["name"]]) for c in CLIPPED_CASES],
                         ids=[c["name"] for c in CASES + CLIPPED_CASES])
def test_matches_nanodrr(client, uploaded, case, golden):
    vid = uploaded[case["volume"], bool(case.get("labels"))]
    images = client.render(vid, [pose_of(p) for p in case["poses"]], intrinsics_of(case),
                           options_of(case))
    assert images.shape == golden.shape
    # Soft labels split each sample by its neighbours' classes: no rounding
    # decides a class, so every channel matches.
    if not case.get("labels") or case.get("soft_labels"):
        assert relative_error(images, golden) < FLOAT32_BOUND
        return
    assert relative_error(images.sum(axis=1), golden.sum(axis=1)) < FLOAT32_BOUND
    difference = np.abs(images - golden)
    assert (difference > FLOAT32_BOUND * np.abs(golden).max()).mean() < LABEL_TIE_PIXELS
    assert difference.max() <= 2 * ONE_SAMPLE


def test_matrix_and_rt_inv_poses_match_nanodrr(client, uploaded):
    case = next(c for c in CASES if c["name"] == "chest_euler_oblique")
    spec = case["poses"][0]
    vid = uploaded["chest", False]
    center = np.asarray(client.get_volume(vid).isocenter)
    rt_inv = reference.make_rt_inv(spec["rotation"], spec["translation"], "AP", center)
    as_matrix = Pose(rotation=reference.euler_zxy(*spec["rotation"]).ravel(),
                     translation=spec["translation"], parameterization="matrix")
    for pose in (rt_inv, as_matrix):
        images = client.render(vid, [pose], intrinsics_of(case), options_of(case))
        assert relative_error(images, GOLDENS[case["name"]]) < FLOAT32_BOUND


@pytest.mark.parametrize("dtype,option", sorted(HALF_BOUNDS))
def test_half_precision_stays_within_its_bound(client, uploaded, dtype, option):
    case = CASES[0]
    images = client.render(uploaded[case["volume"], False], [pose_of(p) for p in case["poses"]],
                           intrinsics_of(case), options_of(case, **{option: dtype}))
    assert relative_error(images, GOLDENS[case["name"]]) < HALF_BOUNDS[dtype, option]
