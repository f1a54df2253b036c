"""The small volumes the nanodrr parity cases render, made the same way by
the golden writer and by the test from the bundled CT data (nothing large is
committed)."""

import pathlib

import nibabel
import numpy as np


def _load(path):
    image = nibabel.load(str(path))
    voxels = np.asanyarray(image.dataobj)
    return np.ascontiguousarray(voxels.transpose(2, 1, 0)), image.affine


def chest(data_dir: pathlib.Path):
    """LIDC-IDRI-0001 every 4th voxel in x and y and every 2nd slice
    (128 x 128 x 67, int16 HU), with the affine that keeps it in place."""
    voxels, affine = _load(data_dir / "lidc-idri-0001.nii.gz")
    step = np.diag([4.0, 4.0, 2.0, 1.0])
    return np.ascontiguousarray(voxels[::2, ::4, ::4]), affine @ step


def abdomen(data_dir: pathlib.Path):
    """TotalSegmentator's example CT as it is (122 x 101 x 112, int32 HU)."""
    return _load(data_dir / "totalsegmentator" / "example_ct.nii.gz")


def tissue_labels(hu: np.ndarray) -> np.ndarray:
    """Classes by HU: 0 air (< -500), 1 lung/fat (< -50), 2 soft tissue
    (< 300), 3 bone."""
    return np.digitize(hu, [-500, -50, 300]).astype(np.uint8)


VOLUMES = {"chest": chest, "abdomen": abdomen}
