"""Writes nanodrr's pose gradients and metric values for the cases of
tests/parity/gradient_cases.json to tests/parity/gradient_goldens.npz, from
nanodrr's torch backend and torch autograd on the CPU (run by
tests/parity/make_goldens.sh).

Goldens are computed in float64 (nanodrr's own float32 renders differ from
float64 by up to 2e-3 on these real-CT cases: trilinear gradients jump at voxel
faces). One more case, nanodrr_test, repeats the setup of nanodrr's own
backend parity test (tests/drr/test_fused.py: a random 32^3 volume, 200
samples, 16 x 16) in float32, with its volume and upstream stored.

Cases without a loss differentiate L = sum(upstream * images) with
upstream[b, c, v, u] = sin(0.1 * (v * W + u) + c); cases with a loss
differentiate nanodrr's metric between the DRR and the DRR at target_pose.
Gradients are with respect to each pose's rotation values then translation,
and with respect to its camera->world matrix (rt_inv_gradients).
"""

import json

import numpy as np
import torch
from nanodrr.camera import make_k_inv
from nanodrr.drr import render
from nanodrr.metrics import (
    GradientNormalizedCrossCorrelation2d,
    MultiscaleNormalizedCrossCorrelation2d,
    NormalizedCrossCorrelation2d,
)

from make_goldens import (  # beside this script, so on sys.path when it runs
    arguments,
    render_options,
    rt_inv_for,
    subject_for,
)


def upstream_for(shape):
    b, c, h, w = shape
    pixel = np.arange(h * w).reshape(h, w)
    return np.stack([[np.sin(0.1 * pixel + k) for k in range(c)] for _ in range(b)]).astype(np.float32)


def metric(spec):
    kind = spec["kind"]
    sizes = [p or None for p in spec.get("patch_sizes", [0])]
    if kind == "ncc":
        return NormalizedCrossCorrelation2d(sizes[0])
    if kind == "multiscale_ncc":
        return MultiscaleNormalizedCrossCorrelation2d(sizes, spec["patch_weights"])
    if kind == "gradient_ncc":
        return GradientNormalizedCrossCorrelation2d(sizes[0], sigma=spec.get("sigma", 1.0))
    return lambda a, b: ((a - b) ** 2).mean(dim=(1, 2, 3))


def gradient_case(case, data_dir):
    subject = subject_for(case, data_dir).to(torch.float64)
    cameras = case["intrinsics"] * (len(case["poses"]) // len(case["intrinsics"]))
    k_inv = torch.cat([make_k_inv(c["sdd"], c["delx"], c["dely"], c["x0"], c["y0"], c["height"],
                                  c["width"], dtype=torch.float64) for c in cameras])
    sdd = torch.tensor([c["sdd"] for c in cameras], dtype=torch.float64)
    height, width = cameras[0]["height"], cameras[0]["width"]
    params = [(torch.tensor([p["rotation"]], dtype=torch.float64, requires_grad=True),
               torch.tensor([p["translation"]], dtype=torch.float64, requires_grad=True))
              for p in case["poses"]]

    def rt_inv(spec, rotation, translation):
        return rt_inv_for(dict(spec, rotation=rotation, translation=translation), subject)

    poses = torch.cat([rt_inv(p, r, t) for p, (r, t) in zip(case["poses"], params)])
    poses.retain_grad()
    options = dict(n_samples=case.get("n_samples", 500), backend="torch", **render_options(case))
    images = render(subject, k_inv, poses, sdd, height, width, **options)
    if "loss" in case:
        with torch.no_grad():
            target_pose = rt_inv_for(case["target_pose"], subject)
            target = render(subject, k_inv[:1], target_pose, sdd[:1], height, width, **options)
        values = metric(case["loss"])(images, target.expand_as(images))
        values.sum().backward()
        out = {"values": values.detach().numpy().astype(np.float64)}
    else:
        upstream = torch.from_numpy(upstream_for(tuple(images.shape))).double()
        (images * upstream).sum().backward()
        out = {}
    out["gradients"] = np.stack([torch.cat([r.grad[0], t.grad[0]]).numpy() for r, t in params])
    out["rt_inv_gradients"] = poses.grad.numpy().astype(np.float64)
    return out


def nanodrr_test_case():
    """nanodrr's backend parity test, pose gradient: its random subject and
    camera, float32, torch backend (their reference)."""
    from nanodrr.camera import make_rt_inv
    from nanodrr.data.subject import Subject

    torch.manual_seed(0)
    size = 32
    image = torch.rand(1, 1, size, size, size, dtype=torch.float32)
    voxel_to_world = torch.eye(4)
    voxel_to_world[:3, 3] = -(size - 1) / 2
    subject = Subject(image, torch.zeros_like(image), voxel_to_world,
                      torch.linalg.inv(voxel_to_world), Subject._make_voxel_to_grid(image.shape),
                      torch.zeros(3), max_label=0, convert_to_mu=False)
    k_inv = make_k_inv(100.0, 1.0, 1.0, 0.0, 0.0, 16, 16)
    rotation = torch.tensor([[5.0, -3.0, 8.0]], dtype=torch.float64, requires_grad=True)
    translation = torch.tensor([[1.0, 80.0, -2.0]], dtype=torch.float64, requires_grad=True)
    rt_inv = make_rt_inv(rotation, translation, "AP", torch.zeros(3, dtype=torch.float64)).float()
    rt_inv.retain_grad()
    w = torch.randn(1, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    out = render(subject, k_inv, rt_inv, torch.tensor([100.0]), 16, 16, n_samples=200,
                 backend="torch")
    (out * w).sum().backward()
    return {"volume": image[0, 0].numpy(), "upstream": w.numpy(),
            "gradients": torch.cat([rotation.grad[0], translation.grad[0]]).numpy()[None],
            "rt_inv_gradients": rt_inv.grad.numpy().astype(np.float64)}


def main():
    data_dir, cases_path, goldens_path = arguments("gradient_cases.json", "gradient_goldens.npz")
    goldens = {}
    for case in json.loads(cases_path.read_text()):
        for key, value in gradient_case(case, data_dir).items():
            goldens[f"{case['name']}/{key}"] = value
        print(case["name"], {k: v for k, v in goldens.items() if k.startswith(case["name"])})
    for key, value in nanodrr_test_case().items():
        goldens[f"nanodrr_test/{key}"] = value
    np.savez_compressed(goldens_path, **goldens)


if __name__ == "__main__":
    main()
