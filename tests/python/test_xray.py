"""drrclient.xray.read_xray on X-ray DICOM files written here by SimpleITK with a C-arm's tags:
the camera and pose come from the tags as xvr maps them, and the image is preprocessed as xvr
does (crop, rescale, background, log-linearization, frames)."""

import pathlib
from typing import Any

import numpy as np
import pytest

from conftest import small_volume
from drrclient import Client
from drrclient.xray import read_xray

sitk = pytest.importorskip("SimpleITK")

# Rows 0.5 mm apart, columns 0.4 mm.
SPACING = (0.4, 0.5)
TAGS = {"0008|0060": "XA", "0018|1110": "1020", "0018|1111": "800", "0018|1510": "-30",
        "0018|1511": "10", "0018|7028": "1.5\\-2", "0020|0020": "P\\F"}


def write_xray(path: pathlib.Path, pixels: Any, tags: dict[str, str]) -> pathlib.Path:
    image = sitk.GetImageFromArray(pixels.astype(np.uint16))
    image.SetSpacing(SPACING if pixels.ndim == 2 else (*SPACING, 1.0))
    for key, value in tags.items():
        image.SetMetaData(key, value)
    sitk.WriteImage(image, str(path))
    return path


def linearized(intensity: Any) -> Any:
    """xvr's preprocessing (no crop, no background) of an intensity image, written out here."""
    rescaled = (intensity - intensity.min()) / (intensity.max() - intensity.min() + 1e-6)
    return np.log((rescaled + 1).max()) - np.log(rescaled + 1)


def test_the_c_arm_tags_give_the_camera_and_the_pose(tmp_path: pathlib.Path) -> None:
    pixels = np.random.default_rng(0).integers(100, 4000, size=(12, 10))
    xray = read_xray(write_xray(tmp_path / "xa.dcm", pixels, TAGS))
    camera = xray.intrinsics
    assert (camera.sdd, camera.dely, camera.delx) == (1020, 0.5, 0.4)
    assert (camera.y0, camera.x0) == (1.5, -2.0)  # DetectorActiveOrigin is (row, column)
    assert (camera.height, camera.width) == (12, 10)
    assert xray.pose is not None
    assert tuple(np.asarray(xray.pose.rotation)) == (-30, 10, 0)
    assert tuple(xray.pose.translation or ()) == (0, 800, 0)
    assert (xray.pose.convention, xray.pose.degrees) == ("ZXY", True)
    # P\\F with a negative (RAO) primary angle: flipped to anterior-foot, left to right.
    assert xray.flipped
    np.testing.assert_allclose(xray.image, linearized(pixels[:, ::-1].astype(float)), rtol=1e-6)
    pa = read_xray(tmp_path / "xa.dcm", orientation="PA").pose
    assert pa is not None and tuple(pa.translation or ()) == (0, -800, 0)


def test_preprocessing_crops_subtracts_the_background_and_reduces_frames(
        tmp_path: pathlib.Path) -> None:
    rng = np.random.default_rng(1)
    pixels = rng.integers(100, 4000, size=(16, 14))
    pixels[pixels < 1500] = 1000  # the most common value: the background
    tags = {key: value for key, value in TAGS.items() if key != "0020|0020"}  # not flipped
    path = write_xray(tmp_path / "bg.dcm", pixels, tags)
    cropped = read_xray(path, crop=3, linearize=False)
    assert not cropped.flipped and cropped.image.shape == (13, 11)
    window = pixels[2:15, 2:13].astype(float)  # 3 off each dimension, 2 before (rounded)
    np.testing.assert_allclose(cropped.image, (window - window.min()) /
                               (window.max() - window.min() + 1e-6), rtol=1e-6)
    background = read_xray(path, subtract_background=True, linearize=False).image
    rescaled = (pixels - pixels.min()) / (pixels.max() - pixels.min() + 1e-6)
    expected = np.clip(rescaled - (1000 - pixels.min()) / (pixels.max() - pixels.min() + 1e-6),
                       -1, 0) + 1
    np.testing.assert_allclose(background, expected, rtol=1e-6)
    # Three frames preprocessed together, then their maximum, their sum, or one of them.
    frames = np.stack([pixels, pixels // 2, pixels // 3])
    path = write_xray(tmp_path / "run.dcm", frames, tags)
    together = linearized(frames.astype(float))
    np.testing.assert_allclose(read_xray(path).image, together.max(axis=0), rtol=1e-6)
    np.testing.assert_allclose(read_xray(path, frames="sum").image, together.sum(axis=0),
                               rtol=1e-6)
    np.testing.assert_allclose(read_xray(path, frames=2).image, together[2], rtol=1e-6)
    with pytest.raises(ValueError, match="frames must be"):
        read_xray(path, frames="mean")


def test_an_xray_camera_and_pose_render_a_drr_of_its_shape(client: Client,
                                                           tmp_path: pathlib.Path) -> None:
    pixels = np.random.default_rng(2).integers(100, 4000, size=(12, 10))
    tags = {**TAGS, "0018|1110": "400", "0018|1111": "200"}
    xray = read_xray(write_xray(tmp_path / "xa.dcm", pixels, tags))
    volume = client.upload_volume(*small_volume(40))
    assert xray.pose is not None
    drr = client.render(volume, [xray.pose], xray.intrinsics)
    assert drr.shape == (1, 1, 12, 10) and float(drr.max()) > 0
    target = client.upload_target(xray.image, volume)  # a registration target as it is
    assert len(target) == 64


def test_a_file_without_its_geometry_is_refused(tmp_path: pathlib.Path) -> None:
    path = write_xray(tmp_path / "plain.dcm", np.ones((4, 4)), {"0008|0060": "OT"})
    with pytest.raises(ValueError, match="DistanceSourceToDetector"):
        read_xray(path)
