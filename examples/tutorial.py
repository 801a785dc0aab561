"""The Neuromatch W1D5 Tutorial 3 in a dozen lines of rsa_gpu: gratings, the CNN trained to tell left from right
tilt, its layers and the pixels compared with V1 by their RDMs; the figures with matplotlib when installed.
Run: .venv/bin/python examples/tutorial.py [--device cpu] [--out fig.png]"""
import argparse

import numpy as np

import rsa_gpu

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--device", default="auto")
p.add_argument("--out", default="tutorial.png", help="figure file (needs matplotlib)")
args = p.parse_args()

results = rsa_gpu.run_tutorial(device=args.device)   # V1 (embedded synthetic), CNN training, RDMs, statistics
print(results.table())                                # 'pool' resembles V1 more than 'fc'; pixels least

# The same steps by hand, from the library's pieces:
angles = np.arange(-90, 91, dtype=np.float32)
net = rsa_gpu.CNN(seed=12, device=args.device)
net.train()                                                       # the tutorial's losses, epoch 5 .. 25
acts = net.forward(rsa_gpu.gratings(angles), layers=["pool", "fc"])
rdms = {name: rsa_gpu.rdm(a, device=args.device) for name, a in acts.items()}
print({name: round(rsa_gpu.compare(results.rdms["v1"], m), 3) for name, m in rdms.items()})

try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    print("matplotlib not installed: no figure (pip install matplotlib)")
else:
    names = list(results.rdms)
    fig, ax = plt.subplots(1, len(names) + 1, figsize=(4 * (len(names) + 1), 3.6))
    for a, name in zip(ax, names):
        a.imshow(results.rdms[name], extent=[-90, 90, 90, -90], cmap="viridis")
        a.set_title(f"RDM: {name}")
    rows = [r for r in results.correlations if r["measure"] == "pearson"]
    ax[-1].bar([r["layer"] for r in rows], [r["value"] for r in rows],
               yerr=[[r["value"] - r.get("ci_low", r["value"]) for r in rows],
                     [r.get("ci_high", r["value"]) - r["value"] for r in rows]])
    ax[-1].set_ylabel("Pearson r with V1 RDM")
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    print("figure written to", args.out)
