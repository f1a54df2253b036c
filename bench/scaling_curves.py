"""Scaling curves of the renderer: build/bench/render_bench's time per DRR of trilinear, Siddon
and the trilinear pose gradient against five things, each from design.md §8's reference case
(the LIDC-IDRI-0001 chest, 200x200 pixels, 500 samples, batch 1, every hardware thread):

1. the image side, 64 to 1024 px, over the reference detector's physical extent;
2. the samples per ray, 100 to 2000 (Siddon is not run: it visits every voxel a ray crosses
   and takes no samples);
3. the batch, 1 to 256 poses per launch (one render_bench call);
4. the volume, 128^3, 256^3, the chest as is (512^2 x 133), 512^2 x 512 and 512^2 x 1024: the
   chest's mu resampled with numpy, by linear interpolation along each axis in turn, over the
   same box (each voxel axis's affine column scaled by old/new count, the origin moved to the
   new first voxel's centre); downsampling interpolates, it does not average. Each volume is
   written to a temporary directory and deleted once timed (512^2 x 1024 float32 is 1 GiB);
5. the cores, 1 to os.cpu_count(): render_bench pinned to the first k with taskset, its CPU
   executors given k threads (CUDA is not run on this curve).

    .venv/bin/python bench/scaling_curves.py [--chest NII] [--out DIR] [--repeats 3]
        [--executors cpu,cpu_scalar[,cuda]] [--bench RENDER_BENCH] [--quick]
    .venv/bin/python bench/scaling_curves.py --replot TSV [--out DIR] [--quick]

Prints one tab-separated line per measurement as it comes (curve, x, executor, renderer,
ms_per_drr; x is pixels per side, samples, poses, voxels or cores), and after each curve the
local slopes d log t / d log x between its successive points, one line per (executor,
renderer). Writes the lines to DIR/scaling-TAG.tsv and the five curves, log-log, to
DIR/scaling-TAG.png, where TAG is the executor families (cpu, cuda) joined by "-". --quick is a
smoke test: two points per curve, small images and volumes, repeats 1, TAG suffixed "-quick".
The TSV begins with the plot's title and the chest's shape as '#' lines; where matplotlib is
missing (a GPU machine), only the TSV is written, and --replot plots it later elsewhere.

The chest is exported once with bench/export_volume.py's export() into a temporary directory, and
render_bench is copied there first, so a rebuild of the build tree cannot change it mid-run.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict

import numpy as np
from export_volume import export, write_geometry

ROOT = pathlib.Path(__file__).resolve().parents[1]
RENDERERS = ("trilinear", "siddon", "trilinear-gradient")
CURVES = ("side", "samples", "batch", "volume", "cores")
COLUMNS = ("curve", "x", "executor", "renderer", "ms_per_drr")


@dataclasses.dataclass
class Plan:
    """The fixed case every curve starts from, and the points of each curve."""

    side: int
    samples: int
    sides: list[int]
    samples_per_ray: list[int]
    batches: list[int]
    volumes: list[tuple[int, int, int] | None]  # (D, H, W); None: the chest as is
    cores: list[int]


def make_plan(quick):
    """The full measurement, or --quick's two small points per curve."""
    cores = os.cpu_count() or 1
    if quick:
        return Plan(
            side=64,
            samples=100,
            sides=[64, 128],
            samples_per_ray=[100, 250],
            batches=[1, 4],
            volumes=[(128, 128, 128), (256, 256, 256)],
            cores=sorted({1, cores}),
        )
    return Plan(
        side=200,
        samples=500,
        sides=[64, 128, 256, 512, 1024],
        samples_per_ray=[100, 250, 500, 1000, 2000],
        batches=[1, 4, 16, 64, 256],
        volumes=[(128, 128, 128), (256, 256, 256), None, (512, 512, 512), (1024, 512, 512)],
        cores=list(range(1, cores + 1)),
    )


@dataclasses.dataclass
class Bench:
    """A render_bench binary, its --repeats, and the comment lines it printed so far."""

    binary: pathlib.Path
    repeats: int
    seen: set[str] = dataclasses.field(default_factory=set)

    def run(self, volume, executors, renderers, side, samples, batches=(1,), cores=None):
        """Runs render_bench (on the first `cores` cores when given) on `volume` (a directory
        with mu.f32 and mu.txt) and yields
        (executor, renderer, batch, ms per DRR) per line of its table as it prints them; echoes the
        comment line naming the case, and its other comment lines not seen before. Exits when
        render_bench fails."""
        voxels = str(volume / "mu.f32")
        flags = {
            "repeats": self.repeats,
            "side": side,
            "samples": samples,
            "batches": ",".join(map(str, batches)),
            "executors": ",".join(executors),
            "renderers": ",".join(renderers),
        }
        if cores is not None:
            flags["threads"] = cores
        command = [] if cores is None else ["taskset", "-c", f"0-{cores - 1}"]
        command += [str(self.binary), voxels, str(volume / "mu.txt")]
        command += [word for flag, value in flags.items() for word in (f"--{flag}", str(value))]
        with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
            for line in process.stdout:
                if line.startswith("#"):
                    if line not in self.seen or line.startswith(f"# {voxels},"):
                        print(line, end="", flush=True)
                    self.seen.add(line)
                elif not line.startswith("executor\t"):
                    executor, renderer, batch, ms_per_launch = line.split("\t")[:4]
                    yield executor, renderer, int(batch), float(ms_per_launch) / int(batch)
        if process.returncode != 0:
            sys.exit(f"scaling_curves: {' '.join(command)} exited with status {process.returncode}")


def read_volume(directory):
    """The mu volume (D, H, W) and its 4x4 voxel->world affine that export_volume.py wrote."""
    numbers = (directory / "mu.txt").read_text().split()
    shape = tuple(int(n) for n in numbers[:3])
    affine = np.array([float(v) for v in numbers[3:19]]).reshape(4, 4)
    return np.fromfile(directory / "mu.f32", dtype="<f4").reshape(shape), affine


def resampled_slices(mu, count):
    """The slices along axis 0 of `mu` resampled to `count` over the same extent: each the linear
    interpolation of the two old slices around the new voxel's centre (clamped to the ends)."""
    old = mu.shape[0]
    for i in range(count):
        position = min(max((i + 0.5) * old / count - 0.5, 0.0), old - 1.0)
        low = int(position)
        weight = position - low
        yield mu[low] * (1 - weight) + mu[min(low + 1, old - 1)] * weight


def resampled_affine(affine, old_shape, new_shape):
    """`affine` for `new_shape` (D, H, W) voxels over the box that `old_shape`'s cover: each voxel
    axis's column (x = W first) scaled by old / new, the origin moved to the first new centre."""
    affine = affine.copy()
    for column, (old, new) in enumerate(zip(old_shape[::-1], new_shape[::-1])):
        scale = old / new
        affine[:3, 3] += affine[:3, column] * (scale - 1) / 2
        affine[:3, column] *= scale
    return affine


def write_resampled(mu, affine, shape, directory):
    """Writes `mu` resampled to `shape` (D, H, W) as mu.f32 and mu.txt in `directory`: W and H in
    memory, then D slice by slice into the file, so the new volume is never whole in memory."""
    write_geometry(directory / "mu.txt", shape, resampled_affine(affine, mu.shape, shape))
    for axis in (2, 1):
        if mu.shape[axis] != shape[axis]:
            mu = np.stack(list(resampled_slices(np.moveaxis(mu, axis, 0), shape[axis])), axis=axis)
    with open(directory / "mu.f32", "wb") as voxels:
        for plane in resampled_slices(mu, shape[0]):
            plane.astype("<f4", copy=False).tofile(voxels)


def shape_label(shape):
    """'W×H×D' of a (D, H, W) shape."""
    return "×".join(str(n) for n in shape[::-1])


def side_curve(bench, chest, plan, executors):
    """(side, executor, renderer, ms per DRR) over the image sides."""
    for side in plan.sides:
        for executor, renderer, _, ms in bench.run(chest, executors, RENDERERS, side, plan.samples):
            yield side, executor, renderer, ms


def samples_curve(bench, chest, plan, executors):
    """(samples, executor, renderer, ms per DRR) over the samples per ray; Siddon is not run."""
    renderers = [r for r in RENDERERS if r != "siddon"]
    for samples in plan.samples_per_ray:
        for executor, renderer, _, ms in bench.run(chest, executors, renderers, plan.side, samples):
            yield samples, executor, renderer, ms


def batch_curve(bench, chest, plan, executors):
    """(batch, executor, renderer, ms per DRR) over the batches, in one render_bench call."""
    for executor, renderer, batch, ms in bench.run(
        chest, executors, RENDERERS, plan.side, plan.samples, batches=plan.batches
    ):
        yield batch, executor, renderer, ms


def volume_curve(bench, chest, plan, executors):
    """(voxels, executor, renderer, ms per DRR) over the volumes, each resampled from the chest
    into a temporary directory (the chest as is read where it is), timed, and deleted."""
    mu, affine = read_volume(chest)
    for shape in plan.volumes:
        with tempfile.TemporaryDirectory() as name:
            directory = chest
            if shape is not None and shape != mu.shape:
                directory = pathlib.Path(name)
                write_resampled(mu, affine, shape, directory)
            for executor, renderer, _, ms in bench.run(
                directory, executors, RENDERERS, plan.side, plan.samples
            ):
                yield math.prod(shape or mu.shape), executor, renderer, ms


def cores_curve(bench, chest, plan, executors):
    """(cores, executor, renderer, ms per DRR) over the cores the CPU executors may use."""
    cpu = [e for e in executors if e.startswith("cpu")]
    for cores in plan.cores if cpu else []:
        for executor, renderer, _, ms in bench.run(
            chest, cpu, RENDERERS, plan.side, plan.samples, cores=cores
        ):
            yield cores, executor, renderer, ms


def print_slopes(curve, rows):
    """Prints, per (executor, renderer) line of `rows` (x, executor, renderer, ms), the local slope
    d log t / d log x between successive points."""
    lines = defaultdict(list)
    for x, executor, renderer, ms in rows:
        lines[executor, renderer].append((x, ms))
    for (executor, renderer), points in lines.items():
        slopes = []
        for (x0, t0), (x1, t1) in zip(sorted(points), sorted(points)[1:]):
            slope = f"{math.log(t1 / t0) / math.log(x1 / x0):+.2f}" if min(t0, t1) > 0 else "n/a"
            slopes.append(f"{x0}->{x1} {slope}")
        print(f"# slope {curve} {executor} {renderer}: {'  '.join(slopes)}", flush=True)


def machine(executors):
    """The CPU's model name (/proc/cpuinfo, else platform.processor()) and its hardware threads,
    after the GPU's name (nvidia-smi) when `executors` include CUDA."""
    try:
        lines = pathlib.Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    name = names[0] if names else platform.processor() or platform.machine()
    host = f"{name}, {os.cpu_count()} hardware threads"
    if not any(e.startswith("cuda") for e in executors):
        return host
    try:
        gpu = (
            subprocess.run(
                ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                check=True,
            )
            .stdout.splitlines()[0]
            .strip()
        )
    except (OSError, subprocess.CalledProcessError, IndexError):
        gpu = "a CUDA GPU (nvidia-smi did not name it)"
    return f"{gpu} (host: {host})"


def replot(tsv, plan, out):
    """Plots the curves of a TSV this script wrote (on a machine without matplotlib, say): its
    rows, and the title and chest shape from its '# title:' and '# chest:' lines, into the PNG of
    the same name in the directory `out`."""
    title, chest_shape, rows = [], None, []
    for line in tsv.read_text().splitlines():
        if line.startswith("# title: "):
            title.append(line.removeprefix("# title: "))
        elif line.startswith("# chest: "):
            chest_shape = tuple(int(n) for n in line.removeprefix("# chest: ").split())
        elif line and not line.startswith("#") and not line.startswith("curve\t"):
            curve, x, executor, renderer, ms = line.split("\t")
            rows.append((curve, int(x), executor, renderer, float(ms)))
    if not title or chest_shape is None or not rows:
        sys.exit(f"scaling_curves: {tsv} has no '# title:' or '# chest:' line, or no rows")
    png = out / tsv.with_suffix(".png").name
    plot(rows, png, "\n".join(title), plan, chest_shape)
    print(f"# wrote {png}")


def plot(rows, path, title, plan, chest_shape):
    """Writes the five curves of `rows` (curve, x, executor, renderer, ms), one panel each and one
    line per (executor, renderer), log-log, to the PNG at `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import LogFormatter, NullLocator

    colours = dict(zip(RENDERERS, ("tab:blue", "tab:orange", "tab:green")))
    dashes = ("-", "--", ":", "-.")
    executors = list(dict.fromkeys(row[2] for row in rows))
    volumes = [shape or chest_shape for shape in plan.volumes]
    reference = f"{plan.side}² px, {plan.samples} samples, batch 1"
    panels = {  # title, x label, x ticks, their labels
        "side": (
            "Image side (same detector extent)",
            f"image side (px; {plan.samples} samples, batch 1)",
            plan.sides,
            plan.sides,
        ),
        "samples": (
            "Samples per ray (Siddon: none, not run)",
            f"samples per ray ({plan.side}² px, batch 1)",
            plan.samples_per_ray,
            plan.samples_per_ray,
        ),
        "batch": (
            "Batch",
            f"poses per launch ({plan.side}² px, {plan.samples} samples)",
            plan.batches,
            plan.batches,
        ),
        "volume": (
            "Volume (the chest resampled, same box)",
            f"volume, W×H×D voxels ({reference})",
            [math.prod(shape) for shape in volumes],
            [shape_label(shape) for shape in volumes],
        ),
        "cores": ("Cores (CPU executors)", f"cores ({reference})", plan.cores, plan.cores),
    }
    figure, axes = plt.subplots(2, 3, figsize=(16, 9.5))
    for ax, curve in zip(axes.flat, CURVES):
        lines = defaultdict(list)
        for name, x, executor, renderer, ms in rows:
            if name == curve:
                lines[executor, renderer].append((x, ms))
        for (executor, renderer), points in lines.items():
            x, ms = zip(*sorted(points))
            ax.plot(
                x,
                ms,
                marker="o",
                color=colours[renderer],
                label=f"{executor} {renderer}",
                linestyle=dashes[executors.index(executor) % len(dashes)],
            )
        heading, xlabel, ticks, tick_labels = panels[curve]
        ax.set(xscale="log", yscale="log", xlabel=xlabel, ylabel="ms per DRR", title=heading)
        ax.set_xticks(ticks, [str(t) for t in tick_labels], rotation=20 if curve == "volume" else 0)
        ax.xaxis.set_minor_locator(NullLocator())
        ax.yaxis.set_major_formatter(LogFormatter())
        ax.yaxis.set_minor_formatter(LogFormatter(minor_thresholds=(1, 0.4)))
        ax.grid(True, which="both", alpha=0.3)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    axes[1, 2].axis("off")
    axes[1, 2].legend(handles, labels, loc="center", title="executor, renderer")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--chest",
        type=pathlib.Path,
        default=ROOT / ".." / "shared" / "data" / "lidc-idri-0001.nii.gz",
        help="the NIfTI CT every volume is made from (default: LIDC-IDRI-0001)",
    )
    parser.add_argument(
        "--out",
        type=pathlib.Path,
        default=ROOT / "docs" / "images",
        help="directory of scaling-TAG.png and scaling-TAG.tsv (default docs/images)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="render_bench --repeats (default 3)")
    parser.add_argument(
        "--executors",
        default="cpu,cpu_scalar",
        help="comma-separated render_bench executors (default cpu,cpu_scalar)",
    )
    parser.add_argument(
        "--bench",
        type=pathlib.Path,
        default=ROOT / "build" / "bench" / "render_bench",
        help="the render_bench binary (default build/bench/render_bench)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke test: two small points per curve, repeats 1"
    )
    parser.add_argument(
        "--replot",
        type=pathlib.Path,
        help="measure nothing: plot this TSV of an earlier run into --out (with --quick if it was quick)",
    )
    args = parser.parse_args()
    plan = make_plan(args.quick)
    if args.replot:
        args.out.mkdir(parents=True, exist_ok=True)
        replot(args.replot, plan, args.out)
        return
    executors = args.executors.split(",")
    tag = "-".join(dict.fromkeys(e.split("_")[0] for e in executors)) + ("-quick" if args.quick else "")
    args.out.mkdir(parents=True, exist_ok=True)
    repeats = 1 if args.quick else args.repeats
    title = (
        f"render_bench scaling on {machine(executors)}\n{args.chest.name}, AP, median of {repeats} runs "
        f"(batch ≥ 64: {max(1, repeats // 3)})"
    )
    rows = []
    with tempfile.TemporaryDirectory() as name, open(args.out / f"scaling-{tag}.tsv", "w") as tsv:
        tmp = pathlib.Path(name)
        bench = Bench(tmp / "render_bench", repeats)
        shutil.copy2(args.bench, bench.binary)
        chest = tmp / "chest"
        export(args.chest, chest)
        chest_shape = read_volume(chest)[0].shape
        for line in title.splitlines():
            print(f"# title: {line}", file=tsv)
        print(f"# chest: {' '.join(map(str, chest_shape))}", file=tsv)
        print("\t".join(COLUMNS), file=tsv)
        print("\t".join(COLUMNS), flush=True)
        for curve, measure in zip(
            CURVES, (side_curve, samples_curve, batch_curve, volume_curve, cores_curve)
        ):
            points = []
            for x, executor, renderer, ms in measure(bench, chest, plan, executors):
                line = f"{curve}\t{x}\t{executor}\t{renderer}\t{ms:.4f}"
                print(line, file=tsv, flush=True)
                print(line, flush=True)
                points.append((x, executor, renderer, ms))
            rows += [(curve, *point) for point in points]
            print_slopes(curve, points)
    try:
        plot(rows, args.out / f"scaling-{tag}.png", title, plan, chest_shape)
    except ImportError:  # matplotlib: a GPU machine may lack it
        print(f"# no matplotlib: wrote {args.out / f'scaling-{tag}.tsv'} only; plot it with --replot")
        return
    print(f"# wrote {args.out / f'scaling-{tag}.tsv'} and {args.out / f'scaling-{tag}.png'}")


if __name__ == "__main__":
    main()
