#!/usr/bin/env python3
"""The model-comparison figure of `rsa_gpu evaluate --out DIR` (rsatoolbox's plot_model_comparison, redrawn):
bars of the model evaluations with their intervals (the JSON's ci_low / ci_high: rsatoolbox's get_ci of the test type,
"t" or "percentile" as ci_type says; the title names it), the noise ceiling as a grey band (lower to upper bound),
and above the bars one line per model pair whose corrected pairwise p-value is below 0.05 (from the better model,
marked with a dot, to the worse one). Models sorted by evaluation, best first.

Run by rsa_gpu (host/figures.cpp):  python3 tools/evaluate_figure.py FOLDER --results RESULTS.json
Needs matplotlib (Debian's python3-matplotlib). Writes FOLDER/figures/evaluate.png.
"""
import argparse
import json
import math
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def finite(x):
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("--results", required=True)
    args = ap.parse_args()
    with open(args.results) as f:
        res = json.load(f)
    models = res["models"]
    order = sorted(range(len(models)), key=lambda i: -(models[i]["evaluation"] if finite(models[i]["evaluation"])
                                                       else -math.inf))
    names = [models[i]["name"] for i in order]
    ev = [models[i]["evaluation"] if finite(models[i]["evaluation"]) else 0.0 for i in order]
    # a percentile interval need not hold the mean of the valid samples: bars from the mean, clipped at 0
    lo = [max(ev[k] - models[i]["ci_low"], 0.0) if finite(models[i]["ci_low"]) else 0.0 for k, i in enumerate(order)]
    hi = [max(models[i]["ci_high"] - ev[k], 0.0) if finite(models[i]["ci_high"]) else 0.0 for k, i in enumerate(order)]
    pw = res["pairwise"]
    sig = [(a, b) for a in range(len(order)) for b in range(a + 1, len(order))
           if finite(pw[order[a]][order[b]]) and pw[order[a]][order[b]] < 0.05]
    n = len(order)
    fig = plt.figure(figsize=(max(6.0, 0.6 * n + 3), 6.5))
    h_pairs = 0.25 if sig else 0.0
    ax = fig.add_axes((0.12, 0.22, 0.83, 0.7 * (1 - h_pairs)))
    x = list(range(n))
    ax.bar(x, ev, color=(0.0, 0.4, 0.9, 0.8), zorder=2)
    ax.errorbar(x, ev, yerr=[lo, hi], fmt="none", ecolor="k", capsize=3, zorder=3)
    nc = res["noise_ceiling"]
    if finite(nc["lower"]) and finite(nc["upper"]):
        ax.axhspan(nc["lower"], nc["upper"], color=(0.5, 0.5, 0.5, 0.3), zorder=4, lw=0)
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=45 if n > 4 else 0, ha="right" if n > 4 else "center")
    ax.set_xlim(-0.5, n - 0.5)
    ax.set_ylabel(f"RDM prediction accuracy [{res['method']}]")
    ax.spines["top"].set_visible(False)
    ax.spines["right"].set_visible(False)
    if sig:
        axp = fig.add_axes((0.12, 0.22 + 0.7 * (1 - h_pairs) + 0.02, 0.83, 0.7 * h_pairs))
        for k, (a, b) in enumerate(sig):
            axp.plot([a, b], [k, k], color="k", lw=1.5)
            axp.plot([a], [k], "o", color="k", ms=4)
        axp.set_xlim(-0.5, n - 0.5)
        axp.set_ylim(-1, len(sig))
        axp.axis("off")
    ci_type = res.get("ci_type", "t")
    title = (f"{res['inference']} inference, {res['n_rdm']} data RDM(s), {res['n_pattern']} patterns; "
             f"pairwise p < 0.05 ({res['correction']}-corrected)\n"
             f"error bars: {100 * res['ci']:g}% {ci_type} interval "
             f"(rsatoolbox's get_ci, test {res.get('test', 't-test')})")
    fig.suptitle(title, fontsize=9)
    os.makedirs(os.path.join(args.folder, "figures"), exist_ok=True)
    fig.savefig(os.path.join(args.folder, "figures", "evaluate.png"), dpi=110)


if __name__ == "__main__":
    main()
