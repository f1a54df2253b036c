"""Turns the JSON files of bench/drr_load (--json) into a markdown table and a
plot: one row per run (label, mode, N, throughput, latency percentiles,
fairness, errors), and throughput and p99 latency against N, one line per
label and mode.

    .venv/bin/python bench/load_report.py RUN.json... [-o TABLE.md] [--png PLOT.png]

The table goes to stdout unless -o names a file. The plot needs matplotlib,
which requirements-dev.txt does not list; without it --png prints why and
writes nothing (the table is still written, and the exit status is 0).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from collections import defaultdict

COLUMNS = ("label", "mode", "N", "throughput (renders/s)", "p50 ms", "p90 ms", "p99 ms", "max ms",
           "fairness min/mean", "errors")


def load_runs(paths):
    """The runs of the JSON files, sorted by label, mode and N."""
    runs = [json.loads(pathlib.Path(p).read_text()) for p in paths]
    return sorted(runs, key=lambda r: (r["label"], r["mode"], r["n"]))


def errors_text(errors):
    """'CODE count, ...' of a run's errors, or '-' when there are none."""
    return ", ".join(f"{code} {count}" for code, count in sorted(errors.items())) or "-"


def table(runs):
    """The markdown table of the runs."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in runs:
        latency = r["latency_ms"]
        cells = [r["label"] or "-", r["mode"], f"{r['n']:g}", f"{r['renders_per_s']:.1f}",
                 f"{latency['p50']:.2f}", f"{latency['p90']:.2f}", f"{latency['p99']:.2f}",
                 f"{latency['max']:.2f}", f"{r['fairness_min_over_mean']:.3f}",
                 errors_text(r["errors"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(runs, path):
    """Writes throughput and p99 against N, one line per (label, mode), to the PNG at `path`;
    False (with a message on stderr) when matplotlib is missing."""
    try:
        import matplotlib
    except ImportError:
        print("load_report: matplotlib is not installed, so no plot was written "
              f"({path}); pip install matplotlib", file=sys.stderr)
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = defaultdict(list)
    for r in runs:
        lines[r["label"] or "-", r["mode"]].append(r)
    figure, (throughput, p99) = plt.subplots(1, 2, figsize=(11, 4))
    for (label, mode), points in sorted(lines.items()):
        n = [r["n"] for r in points]
        name = f"{label} ({mode})"
        throughput.plot(n, [r["renders_per_s"] for r in points], marker="o", label=name)
        p99.plot(n, [r["latency_ms"]["p99"] for r in points], marker="o", label=name)
    throughput.set(xlabel="N (clients, requests/s, or streams)", ylabel="renders/s",
                   title="Throughput")
    p99.set(xlabel="N (clients, requests/s, or streams)", ylabel="ms", title="p99 latency")
    for axes in (throughput, p99):
        axes.grid(True, alpha=0.3)
        axes.set_ylim(bottom=0)
        axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="JSON files written by drr_load --json")
    parser.add_argument("-o", "--out", help="write the markdown table here instead of stdout")
    parser.add_argument("--png", help="also plot throughput and p99 against N to this PNG")
    args = parser.parse_args()
    runs = load_runs(args.runs)
    text = table(runs)
    if args.out:
        pathlib.Path(args.out).write_text(text)
    else:
        sys.stdout.write(text)
    if args.png:
        plot(runs, args.png)


if __name__ == "__main__":
    main()
