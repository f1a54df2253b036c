"""Side-by-side GPU timings of design.md §8's reference case, in one run:
drrserve's CUDA executor (render_bench) and nanodrr's fused Triton kernel on
the same device, each with the volume stored in float32 and in bfloat16, at
batches of 1, 8, 64 and 256 poses. Prints drrserve's times as soon as it has
them, then a markdown table with medians, DRRs per second and the ratios to
drrserve; a storage type whose nanodrr run fails says why in its rows. Run by scripts/gpu_session.sh on a lent
GPU machine (docs/gpu.md):

    python3 bench/compare_gpu.py MU_DIR NIFTI [--bench build-gpu/bench/render_bench]
        [--repeats 20] [--sampling segment|clipped]

MU_DIR holds render_bench's inputs (mu.f32 and mu.txt, bench/export_volume.py);
NIFTI is the same chest for nanodrr. nanodrr must import (torch, Triton and
nanodrr's own dependencies); without it the nanodrr columns say why.
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

from compare_cpu import ROOT, bench_times, nanodrr_times, nanodrr_version

BATCHES = (1, 8, 64, 256)
STORAGES = ("float32", "bfloat16")


def nanodrr_column(nifti, repeats, sampling, storage):
    """{batch: ms per DRR} of nanodrr's Triton kernel on CUDA with the volume
    stored as `storage`, and nanodrr's label (or why it did not run, with no
    times)."""
    try:
        import torch

        label = f"nanodrr {nanodrr_version(sampling)} Triton"
        return label, nanodrr_times(nifti, repeats, BATCHES, "cuda", "triton",
                                    getattr(torch, storage))
    except (Exception, SystemExit) as error:  # reported in its rows; the run goes on
        return f"nanodrr not run ({type(error).__name__}: {error})", {}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mu_dir", type=pathlib.Path)
    parser.add_argument("nifti", type=pathlib.Path)
    parser.add_argument("--bench", type=pathlib.Path,
                        default=ROOT / "build-gpu" / "bench" / "render_bench")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--sampling", choices=("segment", "clipped"), default="segment")
    args = parser.parse_args()
    ours = {storage: bench_times(args.bench, args.mu_dir / "mu.f32", args.mu_dir / "mu.txt",
                                 "cuda", args.repeats, "--renderers", "trilinear",
                                 "--batches", ",".join(map(str, BATCHES)),
                                 "--sampling", args.sampling, "--storage", storage)
            for storage in STORAGES}
    print(f"# drrserve, {args.sampling} sampling: {ours}", flush=True)
    print("| storage | batch | drrserve ms/DRR | drrserve DRR/s | reference | reference ms/DRR "
          "| speed-up |")
    print("| --- | ---: | ---: | ---: | --- | ---: | ---: |")
    for storage in STORAGES:
        label, theirs = nanodrr_column(args.nifti, args.repeats, args.sampling, storage)
        for batch in BATCHES:
            t = ours[storage].get(("trilinear", batch))
            if t is None:
                print(f"| {storage} | {batch} | not run (no CUDA device) | | {label} | | |")
                continue
            other = theirs.get(batch)
            ratio = f"{other / t:.1f}x" if other else ""
            other = f"{other:.4f}" if other else ""
            print(f"| {storage} | {batch} | {t:.4f} | {1000.0 / t:,.0f} | {label} | {other} "
                  f"| {ratio} |", flush=True)

if __name__ == "__main__":
    main()
