"""Writes a NIfTI CT as the inputs of build/bench/render_bench: mu.f32 (the
float32 attenuation volume (D, H, W), C order, little-endian, nanodrr's
default HU -> mu map) and mu.txt (its shape D H W, then its 4x4 voxel->world
affine, row-major, as text). render_bench reads them with the standard
library alone, so it builds with the kernels only.

    .venv/bin/python bench/export_volume.py ../shared/data/lidc-idri-0001.nii.gz out/
"""

import pathlib
import sys

import nibabel
import numpy as np


def hu_to_mu(hu, mu_water=0.0192, mu_bone=0.0573, hu_bone=1000.0):
    hu = np.maximum(hu.astype(np.float32), -1000.0)
    mu = np.where(hu <= 0, mu_water * (1 + hu / 1000.0), mu_water + (mu_bone - mu_water) * hu / hu_bone)
    return np.maximum(mu, 0.0).astype(np.float32)


def write_geometry(path, shape, affine):
    """Writes mu.txt: the shape D H W, then the 4x4 voxel->world affine, row-major."""
    numbers = [*shape, *np.asarray(affine, dtype=np.float64).ravel()]
    path.write_text(" ".join(repr(float(v)) if i >= 3 else str(v) for i, v in enumerate(numbers)) + "\n")


def read_geometry(path):
    """The shape (D, H, W) and the 4x4 voxel->world affine that write_geometry wrote to `path`."""
    numbers = path.read_text().split()
    return tuple(int(n) for n in numbers[:3]), np.array([float(n) for n in numbers[3:19]]).reshape(4, 4)


def export(source, out):
    """Writes the NIfTI CT at `source` as out/mu.f32 and out/mu.txt."""
    out.mkdir(parents=True, exist_ok=True)
    image = nibabel.load(str(source))
    hu = np.asanyarray(image.dataobj).transpose(2, 1, 0)
    mu = np.ascontiguousarray(hu_to_mu(hu), dtype="<f4")
    mu.tofile(out / "mu.f32")
    write_geometry(out / "mu.txt", mu.shape, image.affine)


def main():
    export(pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]))


if __name__ == "__main__":
    main()
