"""Writes nanodrr's images for the parity cases (tests/parity/cases.json) to
tests/parity/goldens.npz, from nanodrr's torch backend on the CPU.

Regenerate with tests/parity/make_goldens.sh, which installs nanodrr 0.1.6
from PyPI into its own venv (.venv-parity; torch is large) and runs this
script and make_gradient_goldens.py, then runs both again under nanodrr 0.1.7
(rays clipped to the volume, soft labels) for the cases of
cases_nanodrr_0_1_7.json and gradient_cases_nanodrr_0_1_7.json:
    make_goldens.py DATA_DIR [CASES_JSON GOLDENS_NPZ]
A case's "soft_labels" is passed to nanodrr's render (0.1.7 and later).

The test (tests/python/test_parity.py) renders the same cases through the
server and compares; CI does not need torch.
"""

import json
import pathlib
import sys

import numpy as np
import torch
import torchio
from nanodrr.camera import make_k_inv
from nanodrr.camera.extrinsics import _get_orientation_matrix
from nanodrr.data import Subject
from nanodrr.drr import render
from nanodrr.geometry import convert

import volumes  # beside this script, so on sys.path when it runs

HERE = pathlib.Path(__file__).resolve().parent


def subject_for(case, data_dir):
    voxels, affine = volumes.VOLUMES[case["volume"]](data_dir)
    image = torchio.ScalarImage(tensor=torch.from_numpy(voxels.transpose(2, 1, 0)[None].astype(np.float32)),
                                affine=affine)
    label = None
    if case.get("labels"):
        label = torchio.LabelMap(
            tensor=torch.from_numpy(volumes.tissue_labels(voxels).transpose(2, 1, 0)[None].astype(np.int64)),
            affine=affine)
    mu = {k: case[k] for k in ("mu_water", "mu_bone", "hu_bone") if k in case}
    return Subject.from_images(image, label, **mu)


def rt_inv_for(pose, subject):
    # Values may be lists, or tensors that autograd follows (gradient goldens).
    rotation = torch.as_tensor(pose["rotation"], dtype=torch.float64).reshape(1, -1)
    translation = torch.as_tensor(pose["translation"], dtype=torch.float64).reshape(1, -1)
    isocenter = subject.isocenter.to(torch.float64)
    if "isocenter" in pose:
        isocenter = torch.tensor(pose["isocenter"], dtype=torch.float64)
    matrix = convert(rotation, translation, pose["parameterization"],
                     convention=pose.get("convention"), degrees=pose.get("degrees", True),
                     isocenter=isocenter)
    orientation = pose.get("orientation", "AP")
    return matrix @ _get_orientation_matrix(orientation, matrix.device, matrix.dtype)


def render_case(case, data_dir):
    subject = subject_for(case, data_dir)
    cameras = case["intrinsics"]
    if len(cameras) == 1:
        cameras = cameras * len(case["poses"])
    k_inv = torch.cat([make_k_inv(c["sdd"], c["delx"], c["dely"], c["x0"], c["y0"], c["height"],
                                  c["width"], dtype=torch.float32) for c in cameras])
    sdd = torch.tensor([c["sdd"] for c in cameras], dtype=torch.float32)
    rt_inv = torch.cat([rt_inv_for(p, subject) for p in case["poses"]]).to(torch.float32)
    with torch.no_grad():
        images = render(subject, k_inv, rt_inv, sdd, cameras[0]["height"], cameras[0]["width"],
                        n_samples=case.get("n_samples", 500),
                        orthographic=cameras[0].get("orthographic", False), backend="torch",
                        **render_options(case))
    return images.numpy().astype(np.float32)


def render_options(case):
    """The keyword arguments of nanodrr's render that only some versions take."""
    return {"soft_labels": True} if case.get("soft_labels") else {}


def arguments(cases, goldens):
    """DATA_DIR, and the cases file and goldens file (defaults beside this script)."""
    data_dir = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else HERE.parents[2] / "shared" / "data")
    if len(sys.argv) > 2:
        cases, goldens = sys.argv[2], sys.argv[3]
    return data_dir, HERE / cases, HERE / goldens


def main():
    data_dir, cases_path, goldens_path = arguments("cases.json", "goldens.npz")
    goldens = {}
    for case in json.loads(cases_path.read_text()):
        goldens[case["name"]] = render_case(case, data_dir)
        print(case["name"], goldens[case["name"]].shape, float(goldens[case["name"]].max()))
    np.savez_compressed(goldens_path, **goldens)


if __name__ == "__main__":
    main()
