#!/usr/bin/env python3
"""The growth plot of `rsa_gpu bench --sweep`: RDM time against S (N fixed) and against N (S fixed), log-log, with
the fitted slope of each, from the sweep.csv the command writes. Needs matplotlib (Debian python3-matplotlib); exits
3 with a message when it is missing. Usage: bench_plot.py sweep.csv sweep.png"""
import csv
import math
import sys

try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    print("matplotlib is not installed (sudo apt-get install python3-matplotlib)")
    sys.exit(3)

rows = list(csv.DictReader(open(sys.argv[1])))
fig, axes = plt.subplots(1, 2, figsize=(10, 4))
for ax, axis, other in zip(axes, ("S", "N"), ("N", "S")):
    pts = [r for r in rows if r["axis"] == axis]
    if not pts:
        continue
    x = [float(r[axis]) for r in pts]
    y = [float(r["median_s"]) for r in pts]
    lo = [float(r["median_s"]) - float(r["min_s"]) for r in pts]
    hi = [float(r["max_s"]) - float(r["median_s"]) for r in pts]
    lx, ly = [math.log(v) for v in x], [math.log(v) for v in y]
    n = len(lx)
    mx, my = sum(lx) / n, sum(ly) / n
    den = sum((a - mx) ** 2 for a in lx)
    k = sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / den if den else float("nan")
    ax.errorbar(x, y, yerr=[lo, hi], marker="o", capsize=3, label="measured (median, min-max)")
    ax.plot(x, [math.exp(my + k * (math.log(v) - mx)) for v in x], "--", label="fit: time ~ %s^%.2f" % (axis, k))
    for r, xv, yv in zip(pts, x, y):
        if r["plan"] != "one-shot":
            ax.annotate(r["plan"], (xv, yv), textcoords="offset points", xytext=(4, -10), fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(axis + (" (stimuli)" if axis == "S" else " (units)"))
    ax.set_ylabel("RDM time (s)")
    ax.set_title("RDM time vs %s (%s = %s)" % (axis, other, pts[0][other]))
    ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=110)
