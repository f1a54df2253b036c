"""The Siddon renderer against plastimatch's exact ray tracer (`plastimatch
drr -i exact`, Debian's plastimatch 1.9.4) on a real volume.

Geometry mapping (see ../shared/data/README.md): plastimatch works in LPS
room coordinates and ignores direction cosines, so a NIfTI volume whose RAS
affine is diag(-sx, -sy, sz) with an offset has voxel (i, j, k) at
LPS origin + spacing * (i, j, k), i.e. at diag(-1, -1, 1) * RAS. For
`-n "0 -1 0" --vup "0 0 1"` its projection matrix (written beside the image)
has camera axes x = +x_LPS (columns), y = -z (rows), z = +y_LPS (toward the
detector) and the source `sad` mm anterior of the isocenter; pixel centres of
an N x N detector sit at (c - (N-1)/2) * spacing, which is drrserve's pixel
centre with x0 = y0 = 0. plastimatch reports the line integral in cm (mm / 10).
"""

import shutil
import subprocess

import nibabel
import numpy as np
import pytest

import reference
import volumes  # tests/parity/volumes.py (on the path through tests/pytest.ini)
from conftest import SHARED_DATA
from drrclient import Intrinsics, RenderOptions

# Both trace exact voxel intersections. Most pixels agree to float32
# precision; rays within a few pixels of the detector's central column (those
# nearly parallel to the sagittal voxel planes) differ by up to about 1.3e-3
# of the peak, as plastimatch's tracer walks such rays differently. Measured on
# this case: median 6e-6, 99th percentile 8e-4, maximum 1.3e-3 of the peak.
MEDIAN_BOUND = 2e-5
MAX_BOUND = 2e-3

LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0])


@pytest.mark.parametrize("sad,sid,size", [(1000.0, 1500.0, 48), (700.0, 1100.0, 40)])
def test_siddon_matches_plastimatch_exact(client, tmp_path, sad, sid, size):
    if not (SHARED_DATA / "lidc-idri-0001.nii.gz").exists():
        pytest.skip(f"{SHARED_DATA} is absent")
    plastimatch = shutil.which("plastimatch")
    assert plastimatch, "plastimatch is missing: scripts/setup.sh installs it"
    hu, affine = volumes.chest(SHARED_DATA)
    mu = reference.hu_to_mu(hu).astype(np.float32)
    nibabel.save(nibabel.Nifti1Image(mu.transpose(2, 1, 0), affine), str(tmp_path / "mu.nii.gz"))
    affine = nibabel.load(str(tmp_path / "mu.nii.gz")).affine  # as stored: float32
    isocenter_ras = reference.volume_center(mu.shape, affine)
    isocenter_lps = LPS_FROM_RAS @ isocenter_ras
    detector_mm = 400.0
    subprocess.run(
        [plastimatch, "drr", "-i", "exact", "-P", "none", "-t", "pfm",
         "-r", f"{size} {size}", "-z", f"{detector_mm} {detector_mm}",
         "--sad", str(sad), "--sid", str(sid), "-n", "0 -1 0", "--vup", "0 0 1",
         "-o", " ".join(f"{v:.6f}" for v in isocenter_lps), "-O", str(tmp_path / "ap_"),
         str(tmp_path / "mu.nii.gz")],
        check=True, capture_output=True)
    expected = 10.0 * read_pfm(tmp_path / "ap_0000.pfm")

    # The same camera for drrserve: camera axes in RAS as columns.
    rotation = LPS_FROM_RAS @ np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]], float)
    rt_inv = np.eye(4)
    rt_inv[:3, :3] = rotation
    rt_inv[:3, 3] = isocenter_ras + LPS_FROM_RAS @ np.array([0.0, -sad, 0.0])
    vid = client.upload_volume(mu, affine, value_kind="attenuation")
    pixel = detector_mm / size
    image = client.render(vid, [rt_inv],
                          Intrinsics(sdd=sid, delx=pixel, dely=pixel, height=size, width=size),
                          RenderOptions(renderer="siddon"))[0, 0]
    assert np.abs(expected).max() > 1.0  # the view crosses the chest
    relative = np.abs(image - expected) / np.abs(expected).max()
    assert np.median(relative) < MEDIAN_BOUND
    assert relative.max() < MAX_BOUND


def read_pfm(path):
    """A grayscale PFM image. plastimatch writes the top row first (not the
    bottom row first that the PFM format specifies)."""
    with open(path, "rb") as f:
        assert f.readline().strip() == b"Pf"
        width, height = map(int, f.readline().split())
        scale = float(f.readline())
        data = np.frombuffer(f.read(), dtype="<f4" if scale < 0 else ">f4")
    return data.reshape(height, width).astype(np.float64)
