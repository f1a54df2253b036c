"""Side-by-side GPU timings of design.md §8's reference case, in one run:
drrserve's CUDA executor (render_bench) and nanodrr's fused Triton kernel on
the same device, each with the volume stored in float32 and in bfloat16, at
batches of 1, 8, 64 and 256 poses. Prints drrserve's times as soon as it has
them, then a markdown table with medians, DRRs per second and the ratios to
drrserve; a batch whose nanodrr run fails says why in its row. Run by
scripts/gpu_session.sh on a lent GPU machine (docs/gpu.md):

    python3 bench/compare_gpu.py MU_DIR [--nifti CHEST] [--bench build-gpu/bench/render_bench]
        [--repeats 20] [--sampling segment|clipped] [--batches 1,8,64,256]
        [--device cuda] [--backend triton]

MU_DIR holds render_bench's inputs (mu.f32 and mu.txt, bench/export_volume.py).
nanodrr reads the chest from CHEST (HU, converted by nanodrr), or without
--nifti from MU_DIR/mu.nii, written here from mu.f32 (the same μ: the export
uses nanodrr's default HU -> μ map) and loaded with convert_to_mu=False; that
way the chest need not travel to the GPU machine twice. nanodrr must import
(torch, Triton, torchio with SimpleITK, nibabel, roma, platformdirs); without
it the nanodrr columns say why. `--device cpu --backend torch` is a dry run
of nanodrr's side on a machine without a GPU.
drrserve's times include copying the images to host memory (its executors
return them there); nanodrr's images stay on the device. nanodrr's bfloat16
is `Subject.to("cuda", torch.bfloat16)`, its public way, which rounds the HU
volume and the geometry buffers too (render_fused computes the rays in
float32 again): the same work per sample, other numbers.
`--sampling clipped` times clipped rays beside nanodrr 0.1.7, as
bench/compare_cpu.py does.
"""

import argparse
import pathlib

import numpy as np
from compare_cpu import ROOT, bench_times, nanodrr_times, nanodrr_version
from export_volume import read_geometry

BATCHES = (1, 8, 64, 256)  # by default
STORAGES = ("float32", "bfloat16")


def write_mu_nifti(mu_dir):
    """Writes MU_DIR/mu.nii, the μ volume of mu.f32 with mu.txt's affine (the
    layout bench/export_volume.py took from the chest's NIfTI), and returns
    its path."""
    import nibabel

    shape, affine = read_geometry(mu_dir / "mu.txt")
    mu = np.fromfile(mu_dir / "mu.f32", dtype="<f4").reshape(shape).transpose(2, 1, 0)
    path = mu_dir / "mu.nii"
    nibabel.save(nibabel.Nifti1Image(mu, affine), str(path))
    return path


def nanodrr_cell(volume, convert_to_mu, args, storage, batch):
    """nanodrr's `args.backend` on `args.device` with the volume stored as
    `storage`, at one batch: its label and ms per DRR, or why it did not run
    (a batch that fails leaves the others to run)."""
    try:
        import torch

        label = f"nanodrr {nanodrr_version(args.sampling)} {args.backend} ({args.device})"
        times = nanodrr_times(volume, args.repeats, (batch,), args.device, args.backend,
                              getattr(torch, storage), convert_to_mu=convert_to_mu)
        return label, times[batch]
    except (Exception, SystemExit) as error:  # reported in its row; the run goes on
        return f"nanodrr not run ({type(error).__name__}: {str(error)[:200]})", None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mu_dir", type=pathlib.Path)
    parser.add_argument("--nifti", type=pathlib.Path)
    parser.add_argument("--bench", type=pathlib.Path,
                        default=ROOT / "build-gpu" / "bench" / "render_bench")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--sampling", choices=("segment", "clipped"), default="segment")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--backend", choices=("triton", "torch"), default="triton")
    parser.add_argument("--batches", default=",".join(map(str, BATCHES)))
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    ours = {storage: bench_times(args.bench, args.mu_dir / "mu.f32", args.mu_dir / "mu.txt",
                                 "cuda", args.repeats, "--renderers", "trilinear",
                                 "--batches", args.batches,
                                 "--sampling", args.sampling, "--storage", storage)
            for storage in STORAGES}
    print(f"# drrserve, {args.sampling} sampling: {ours}", flush=True)
    print("| storage | batch | drrserve ms/DRR | drrserve DRR/s | reference | reference ms/DRR "
          "| speed-up |")
    print("| --- | ---: | ---: | ---: | --- | ---: | ---: |")
    volume, convert = (args.nifti, True) if args.nifti else (write_mu_nifti(args.mu_dir), False)
    for storage in STORAGES:
        for batch in batches:
            label, other = nanodrr_cell(volume, convert, args, storage, batch)
            t = ours[storage].get(("trilinear", batch))
            mine = f"{t:.4f} | {1000.0 / t:,.0f}" if t else "not run (no CUDA device) |"
            ratio = f"{other / t:.1f}x" if t and other else ""
            other = f"{other:.4f}" if other else ""
            print(f"| {storage} | {batch} | {mine} | {label} | {other} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
