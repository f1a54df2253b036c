"""Side-by-side CPU timings of design.md §8's reference case, in one run:
drrserve's CPU executor (build/bench/render_bench), nanodrr's torch backend,
and plastimatch `drr -i exact`. Prints a markdown table with medians and the
ratios to drrserve.

Needs plastimatch (scripts/setup.sh installs it), and for the nanodrr rows
torch and nanodrr (the parity venv, see tests/parity/make_goldens.py); without
them those rows say so:

    .venv-parity/bin/python bench/compare_cpu.py [../shared/data] [--repeats 5]
    .venv/bin/python bench/compare_cpu.py             # plastimatch rows only

`--sampling clipped` times drrserve's clipped rays beside nanodrr 0.1.7, which
samples that way (make_goldens.sh installs it beside 0.1.6):

    PYTHONPATH=.venv-parity/nanodrr-0.1.7 .venv-parity/bin/python bench/compare_cpu.py \
        --sampling clipped
"""

import argparse
import pathlib
import statistics
import subprocess
import tempfile
import time

from export_volume import export

ROOT = pathlib.Path(__file__).resolve().parents[1]


def bench_times(bench, mu_f32, mu_txt, executor, repeats, *flags):
    """{(renderer, batch): ms per DRR} of one executor from the render_bench at
    `bench`, with its extra command-line `flags`."""
    out = subprocess.run([str(bench), str(mu_f32), str(mu_txt), "--repeats", str(repeats),
                          "--executors", executor, *flags],
                         check=True, capture_output=True, text=True)
    times = {}
    for line in out.stdout.splitlines():
        fields = line.split("\t")
        if line.startswith("#") or fields[0] != executor:
            continue
        times[fields[1], int(fields[2])] = float(fields[4])
    return times


def drrserve_times(chest, repeats, sampling):
    """{(renderer, batch): ms per DRR} from render_bench (CPU executor only)."""
    with tempfile.TemporaryDirectory() as tmp:
        export(chest, pathlib.Path(tmp))
        return bench_times(ROOT / "build" / "bench" / "render_bench", pathlib.Path(tmp) / "mu.f32",
                           pathlib.Path(tmp) / "mu.txt", "cpu", repeats, "--sampling", sampling)


def nanodrr_version(sampling):
    """The installed nanodrr's version, which must sample as `sampling` does
    (0.1.7 and later clip rays to the volume)."""
    from importlib.metadata import version

    from nanodrr.drr import backends

    clips = hasattr(backends, "_clip_rays")
    if clips != (sampling == "clipped"):
        raise SystemExit(f"nanodrr {version('nanodrr')} does not sample rays as --sampling "
                         f"{sampling} does (clipped: 0.1.7 and later; segment: 0.1.6)")
    return version("nanodrr")


def nanodrr_times(chest, repeats, batches, device="cpu", backend="torch", storage=None, **mu):
    """{batch: ms per DRR} of nanodrr's `backend` ("torch" or "triton") on
    `device`, the volume stored as the torch dtype `storage` (None: as read),
    read with nanodrr's HU -> μ keywords `mu` (convert_to_mu=False: as μ).
    The first render of each batch (which compiles Triton's kernel) is not
    timed; on CUDA each timed render ends with a synchronize."""
    import torch
    from nanodrr.camera import make_k_inv, make_rt_inv
    from nanodrr.data import Subject
    from nanodrr.drr import render

    torch.set_num_threads(torch.get_num_threads())
    subject = Subject.from_filepath(str(chest), **mu)
    subject = subject.to(device) if storage is None else subject.to(device, storage)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    times = {}
    for batch in batches:
        k_inv = make_k_inv(1020.0, 2.0, 2.0, 0.0, 0.0, 200, 200).expand(batch, -1, -1).to(device)
        rt_inv = make_rt_inv(torch.zeros(batch, 3), torch.tensor([[0.0, 850.0, 0.0]] * batch),
                             "AP", subject.isocenter.cpu()).to(device)
        sdd = torch.full((batch,), 1020.0, device=device)
        runs = []
        with torch.no_grad():
            for r in range(repeats + 1):
                sync()
                start = time.perf_counter()
                render(subject, k_inv, rt_inv, sdd, 200, 200, n_samples=500, backend=backend)
                sync()
                if r:
                    runs.append((time.perf_counter() - start) * 1000 / batch)
        times[batch] = statistics.median(runs)
    return times


def plastimatch_ms(chest, repeats, angles=9):
    """ms per DRR of `plastimatch drr -i exact` (200x200, 2 mm pixels, sad 850,
    sid 1020): the difference between runs of `angles` views and of one view,
    so that loading the volume is not counted."""
    def run(n):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            subprocess.run(["plastimatch", "drr", "-a", str(n), "-N", "2", "-i", "exact", "-t", "pfm",
                            "-r", "200 200", "-z", "400 400", "--sad", "850", "--sid", "1020",
                            "-O", str(pathlib.Path(tmp) / "x_"), str(chest)],
                           check=True, capture_output=True)
            return time.perf_counter() - start
    one = statistics.median(run(1) for _ in range(repeats))
    many = statistics.median(run(angles) for _ in range(repeats))
    return (many - one) * 1000 / (angles - 1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("data", nargs="?", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sampling", choices=("segment", "clipped"), default="segment")
    args = parser.parse_args()
    chest = pathlib.Path(args.data) / "lidc-idri-0001.nii.gz"
    ours = drrserve_times(chest, args.repeats, args.sampling)
    try:
        nanodrr = f"nanodrr {nanodrr_version(args.sampling)} torch (CPU)"
        nano = nanodrr_times(chest, max(1, args.repeats // 2), (1, 8))
        missing = "not run (memory)"
    except ImportError as error:
        nanodrr, nano = "nanodrr torch (CPU)", {}
        missing = f"not run ({error.name} not installed)"
    plast = plastimatch_ms(chest, args.repeats)
    print("| renderer | batch | drrserve ms/DRR | reference | reference ms/DRR | speed-up |")
    print("| --- | ---: | ---: | --- | ---: | ---: |")
    for batch in (1, 8, 64):
        t = ours["trilinear", batch]
        if batch in nano:
            print(f"| trilinear | {batch} | {t:.1f} | {nanodrr} | {nano[batch]:.1f} "
                  f"| {nano[batch] / t:.1f}x |")
        else:
            print(f"| trilinear | {batch} | {t:.1f} | {nanodrr} | {missing} | |")
    for batch in (1, 8, 64):
        t = ours["siddon", batch]
        print(f"| siddon | {batch} | {t:.1f} | plastimatch drr -i exact | {plast:.1f} "
              f"| {plast / t:.1f}x |")
    print(f"| trilinear | 1 | {ours['trilinear', 1]:.1f} | plastimatch drr -i exact | {plast:.1f} "
          f"| {plast / ours['trilinear', 1]:.1f}x |")


if __name__ == "__main__":
    main()
