"""drrclient.volume.load_volume against real files: the 8 DICOM slices of LIDC-IDRI-0001 give
the voxels and the affine of the matching slab of the NIfTI made from the whole series, and NRRD
and MetaImage files SimpleITK writes from that NIfTI read back as nibabel reads the NIfTI."""

import pathlib
import shutil
import subprocess
from typing import Any

import numpy as np
import pytest

from conftest import CHEST, DRRCTL
from drrclient import Client, Intrinsics, Pose, load_nifti, load_volume

sitk = pytest.importorskip("SimpleITK")
DICOM = CHEST.parent / "lidc-idri-0001-dicom"
# The first (most inferior) of the 8 slices, 1-047 at z = -125 mm, is NIfTI slice 86 (z = -340 mm
# + 86 x 2.5 mm).
FIRST_SLICE = 86


@pytest.fixture(scope="module")
def nifti() -> tuple[Any, Any]:
    if not CHEST.exists() or not DICOM.exists():
        pytest.skip(f"{CHEST} or {DICOM} is absent")
    return load_nifti(str(CHEST))


def slab_affine(affine: Any, first: int) -> Any:
    """``affine`` of a volume whose first slice is slice ``first`` of the one ``affine`` maps."""
    shifted = affine.copy()
    shifted[:3, 3] = affine[:3, :3] @ np.array([0.0, 0.0, first]) + affine[:3, 3]
    return shifted


@pytest.mark.parametrize("path", [DICOM, DICOM / "1-043.dcm"], ids=["directory", "one slice"])
def test_a_dicom_series_gives_the_niftis_voxels_and_affine(nifti: Any, path: pathlib.Path) -> None:
    voxels, affine = load_volume(path)
    assert voxels.shape == (8, 512, 512) and voxels.dtype == np.int16
    np.testing.assert_array_equal(voxels, nifti[0][FIRST_SLICE:FIRST_SLICE + 8])
    # The NIfTI's offsets were written in single precision: 1e-4 mm.
    np.testing.assert_allclose(affine, slab_affine(nifti[1], FIRST_SLICE), atol=1e-4)


@pytest.mark.parametrize("suffix", [".nrrd", ".mha", ".mhd"])
def test_nrrd_and_metaimage_written_by_itk_read_back_as_the_nifti(
        nifti: Any, suffix: str, tmp_path: pathlib.Path) -> None:
    written = tmp_path / f"chest{suffix}"
    sitk.WriteImage(sitk.ReadImage(str(CHEST)), str(written))
    voxels, affine = load_volume(written)
    np.testing.assert_array_equal(voxels, nifti[0])
    np.testing.assert_allclose(affine, nifti[1], atol=1e-4)


def test_a_dicom_volume_renders_as_its_nifti_slab(nifti: Any, client: Client) -> None:
    voxels, affine = load_volume(DICOM)
    camera = Intrinsics(sdd=1020, delx=4.0, dely=4.0, height=32, width=32)
    pose = [Pose(rotation=(0, 0, 0), translation=(0, 850, 0))]
    from_dicom = client.render(client.upload_volume(voxels, affine), pose, camera)
    slab = np.ascontiguousarray(nifti[0][FIRST_SLICE:FIRST_SLICE + 8])
    from_nifti = client.render(client.upload_volume(slab, slab_affine(nifti[1], FIRST_SLICE)),
                               pose, camera)
    np.testing.assert_allclose(from_dicom, from_nifti, rtol=1e-5, atol=1e-6)
    assert float(from_dicom.max()) > 0


def test_a_slice_reads_its_own_series_where_a_directory_holds_several(
        nifti: Any, tmp_path: pathlib.Path) -> None:
    for path in DICOM.iterdir():
        shutil.copy(path, tmp_path / path.name)
    other = sitk.ReadImage(str(DICOM / "1-043.dcm"))  # a one-slice series of its own
    other.SetMetaData("0020|000e", "1.2.826.0.1.3680043.2.1125.1.99")
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    writer.SetFileName(str(tmp_path / "other.dcm"))
    writer.Execute(other)
    with pytest.raises(ValueError, match="holds 2 DICOM series; choose one"):
        load_volume(tmp_path)
    voxels, _ = load_volume(tmp_path / "1-045.dcm")
    np.testing.assert_array_equal(voxels, nifti[0][FIRST_SLICE:FIRST_SLICE + 8])
    assert load_volume(tmp_path / "other.dcm")[0].shape == (1, 512, 512)
    assert load_volume(tmp_path, series="1.2.826.0.1.3680043.2.1125.1.99")[0].shape[0] == 1


def test_what_is_not_a_volume_is_refused_clearly(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ValueError, match="not a NIfTI, NRRD, MetaImage or DICOM"):
        load_volume(tmp_path / "chest.png")
    with pytest.raises(ValueError, match="no DICOM series"):
        load_volume(tmp_path)


@pytest.mark.parametrize("name", ["directory", "one slice", "nrrd"])
def test_drrctl_uploads_every_format_as_the_python_client_does(
        nifti: Any, name: str, client: Client, server: Any, tmp_path: pathlib.Path) -> None:
    """drrctl reads with ITK in C++, drrclient with SimpleITK: one file, one volume id."""
    path = {"directory": DICOM, "one slice": DICOM / "1-043.dcm",
            "nrrd": tmp_path / "chest.nrrd"}[name]
    if name == "nrrd":
        sitk.WriteImage(sitk.ReadImage(str(DICOM / "1-043.dcm")), str(path))
    uploaded = subprocess.run([str(DRRCTL), "upload", str(path), "--server", server.address],
                              capture_output=True, encoding="utf-8", timeout=120)
    assert uploaded.returncode == 0, uploaded.stderr
    assert uploaded.stdout.split()[-1] == client.upload_volume(*load_volume(path))
