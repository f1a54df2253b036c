"""Writes a NIfTI CT as the inputs of build/bench/render_bench: MU.npy (the
float32 attenuation volume (D, H, W), nanodrr's default HU -> mu map) and
AFFINE.npy (its 4x4 voxel->world, float64).

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


def main():
    source, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    image = nibabel.load(str(source))
    hu = np.asanyarray(image.dataobj).transpose(2, 1, 0)
    np.save(out / "mu.npy", np.ascontiguousarray(hu_to_mu(hu)))
    np.save(out / "affine.npy", image.affine.astype(np.float64))


if __name__ == "__main__":
    main()
