#!/usr/bin/python3
"""Draw the tutorial's figures from an rsa_gpu output folder and bundle them into one HTML report.

Usage: /usr/bin/python3 tools/make_figures.py OUT_DIR [--seed 0]

Reads what `rsa_gpu --out OUT_DIR` wrote (results.json, orientations.npy, rdm_*.npy, resp_*.npy and,
when present, resp_v1.npy) and writes OUT_DIR/figures/*.png plus OUT_DIR/report.html, a single
self-contained page (figures embedded as base64 data URIs, inline CSS, no external resources).

The figures follow section 1.8 ("Plotting helpers") of the Neuromatch W1D5 Tutorial 3 spec:
  stimuli.png        show_stimulus: example gratings at -90, -45, 0, 45, 90 degrees
  rdms.png           plot_multiple_rdm: one RDM per population, vmin 0 vmax 2
  correlations.png   plot_rdm_rdm_correlations: bar chart of r(model RDM, V1 RDM)
  rdm_rows.png       plot_rdm_rows: RDM rows for -75, -25, 25, 75 degrees
  tuning.png         tuning-curve cell: 3 random units per population (seeded with --seed)
  embedding.png      plot_resp_lowd: PCA (<= 20 components) then 2-D t-SNE, coloured by orientation
  training_loss.png  the CNN's mini-batch losses (not in the tutorial, which only prints them)

Needs Debian's python3-matplotlib, python3-numpy and python3-sklearn (sklearn only for embedding.png).
Every file is written under a temporary name and moved into place with os.replace.
"""

import argparse
import base64
import datetime
import html
import io
import json
import os
import sys
import time

import numpy as np

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

DPI = 100
TSNE_LARGE_S = 2000  # above this many stimuli, t-SNE uses fewer iterations (see tsne_settings)
TSNE_MAX_POINTS = 6000  # above this many stimuli, t-SNE embeds a seeded random subset


# ----------------------------------------------------------------------------------------------
# small utilities


def fail(msg, code=2):
    print(f"make_figures.py: error: {msg}", file=sys.stderr)
    sys.exit(code)


def atomic_write_bytes(path, data):
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def save_figure(fig, path):
    """Render to memory, then write atomically; returns the PNG bytes (reused for the report)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", facecolor="white")
    plt.close(fig)
    data = buf.getvalue()
    atomic_write_bytes(path, data)
    return data


def load_npy(out_dir, name, required=False):
    path = os.path.join(out_dir, name)
    if not os.path.exists(path):
        if required:
            fail(f"{path} is missing")
        return None
    # memory-map: resp_v1.npy may be 4,598 x 23,589 floats
    return np.load(path, mmap_mode="r", allow_pickle=False)


def layer_label(layer):
    """The tutorial's resp_dict keys: "V1 data", "model\n'pool' layer", ..."""
    if layer == "v1":
        return "V1 data"
    if layer == "pixels":
        return "pixels (control)"
    return f"model\n'{layer}' layer"


def flat(label):
    return label.replace("\n", " ")


def nearest_index(oris, target):
    return int(np.argmin(np.abs(np.asarray(oris, dtype=np.float64) - target)))


# ----------------------------------------------------------------------------------------------
# data


class Run:
    def __init__(self, out_dir, results_path=None):
        self.out_dir = out_dir
        res_path = results_path or os.path.join(out_dir, "results.json")
        if not os.path.isfile(res_path):
            fail(f"{res_path} not found: OUT_DIR must be a folder written by `rsa_gpu --out OUT_DIR`")
        try:
            with open(res_path) as f:
                self.results = json.load(f)
        except (OSError, ValueError) as e:
            fail(f"cannot read {res_path}: {e}")
        self.notes = []  # things skipped, shown in the report and printed

        oris = load_npy(out_dir, "orientations.npy", required=True)
        self.oris = np.asarray(oris, dtype=np.float64).reshape(-1)
        self.S = len(self.oris)
        # display order: by orientation (trial-level runs need not be sorted)
        self.order = np.argsort(self.oris, kind="stable")
        self.sorted = bool(np.all(self.order == np.arange(self.S)))

        # layers in the order of the correlation table, then any other rdm_*.npy found
        self.correlations = list(self.results.get("correlations") or [])
        layers = []
        for c in self.correlations:
            if c.get("layer") and c["layer"] not in layers and c["layer"] != "v1":
                layers.append(c["layer"])
        for fn in sorted(os.listdir(out_dir)):
            if fn.startswith("rdm_") and fn.endswith(".npy"):
                name = fn[4:-4]
                if name != "v1" and name not in layers:
                    layers.append(name)
        self.layers = layers

        self.rdms = {}  # label -> S x S
        for name in ["v1"] + layers:
            m = load_npy(out_dir, f"rdm_{name}.npy")
            if m is None:
                self.notes.append(f"rdm_{name}.npy not found: left out of the RDM figures")
                continue
            if m.shape != (self.S, self.S):
                self.notes.append(f"rdm_{name}.npy has shape {m.shape}, expected {(self.S, self.S)}: skipped")
                continue
            self.rdms[name] = m

        self.resps = {}  # name -> S x N (memory-mapped)
        for name in ["v1"] + layers:
            r = load_npy(out_dir, f"resp_{name}.npy")
            if r is None and name == "v1":
                # Large recordings keep a seeded random subset of neurons for the figures (rsa_gpu writes it
                # when resp_v1.npy itself would exceed 64 MB); the V1 RDM panels always use every neuron.
                r = load_npy(out_dir, "resp_v1_subset.npy")
                if r is not None:
                    self.resp_files = getattr(self, "resp_files", {})
                    self.resp_files["v1"] = "resp_v1_subset.npy"
                    self.notes.append(f"V1 tuning curves and embedding use resp_v1_subset.npy: a seeded random "
                                      f"subset of {r.shape[1]} neurons (the RDMs use all of them)")
            if r is None:
                if name == "v1":
                    self.notes.append("resp_v1.npy not found (V1 responses are not saved by this run): "
                                      "V1 left out of the tuning-curve and t-SNE figures")
                continue
            if r.ndim != 2 or r.shape[0] != self.S:
                self.notes.append(f"resp_{name}.npy has shape {r.shape}, expected ({self.S}, N): skipped")
                continue
            self.resps[name] = r


# ----------------------------------------------------------------------------------------------
# figures (one function per tutorial helper)


def fig_stimuli(run):
    pix = run.resps.get("pixels")
    if pix is None:
        return None, "resp_pixels.npy not found: no stimulus figure"
    st = run.results.get("stimuli") or {}
    h, w = int(st.get("height", 48)), int(st.get("width", 64))
    if h * w != pix.shape[1]:
        return None, f"resp_pixels.npy has {pix.shape[1]} columns, not {h} x {w}: no stimulus figure"
    targets = np.linspace(-90, 90, 5)
    fig, axs = plt.subplots(1, len(targets), figsize=(15, 3))
    for ax, t in zip(axs, targets):
        i = nearest_index(run.oris, t)
        ax.imshow(np.asarray(pix[i]).reshape(h, w), cmap="binary", aspect="auto")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.spines["left"].set_visible(False)
        ax.spines["bottom"].set_visible(False)
        ax.set_title(f"{run.oris[i]: .0f}°")
    caption = (f"Example stimuli: the {h} x {w} gratings (rows of resp_pixels.npy) nearest to "
               f"-90, -45, 0, 45 and 90 degrees, drawn with the 'binary' colormap "
               f"(0 = vertical, negative = tilted left, positive = tilted right).")
    return fig, caption


def fig_rdms(run):
    names = list(run.rdms)
    n = len(names)
    fig, axs = plt.subplots(1, n, figsize=(4 * n, 3.5), squeeze=False)
    o = run.order
    for ax, name in zip(axs[0], names):
        m = np.asarray(run.rdms[name])
        if not run.sorted:
            m = m[np.ix_(o, o)]
        im = ax.imshow(m, vmin=0, vmax=2)
        ax.set_xticks([])
        ax.set_yticks([])
        cb = fig.colorbar(im, ax=ax)
        cb.set_label("dissimilarity")
        ax.set_title(layer_label(name))
    caption = (f"Representational dissimilarity matrices (1 - Pearson correlation between population "
               f"responses to each pair of the {run.S} stimuli"
               + ("" if run.sorted else ", stimuli sorted by orientation")
               + ", -90 degrees at the top left). Colour range 0 to 2.")
    return fig, caption


def _ceiling_span(c):
    """A row's noise ceiling as (low, high), or None. Accepts a number, [low, high] or {low/lower, high/upper}."""
    v = c.get("ceiling")
    if v is None:
        return None
    if isinstance(v, (int, float)):
        return (float(v), float(v)) if np.isfinite(v) else None
    if isinstance(v, (list, tuple)) and len(v) == 2:
        return float(v[0]), float(v[1])
    if isinstance(v, dict):
        lo = v.get("low", v.get("lower"))
        hi = v.get("high", v.get("upper"))
        if lo is not None and hi is not None:
            return float(lo), float(hi)
        if lo is not None or hi is not None:
            x = float(lo if lo is not None else hi)
            return x, x
    return None


def fig_correlations(run):
    rows = [c for c in run.correlations if c.get("value") is not None]
    if not rows:
        return None, "results.json has no correlations: no bar chart"
    layers = []
    measures = []
    for c in rows:
        if c["layer"] not in layers:
            layers.append(c["layer"])
        m = c.get("measure", "")
        if m not in measures:
            measures.append(m)
    nm = len(measures)
    width = 0.8 / nm
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(layers) * max(1, nm ** 0.5)), 5))
    x = np.arange(len(layers))
    have_ci = False
    ceilings = []
    for j, meas in enumerate(measures):
        vals, lo, hi, xs = [], [], [], []
        for i, layer in enumerate(layers):
            c = next((r for r in rows if r["layer"] == layer and r.get("measure", "") == meas), None)
            if c is None:
                continue
            xi = x[i] + (j - (nm - 1) / 2) * width
            v = float(c["value"])
            xs.append(xi)
            vals.append(v)
            if c.get("ci_low") is not None and c.get("ci_high") is not None:
                lo.append(max(0.0, v - float(c["ci_low"])))
                hi.append(max(0.0, float(c["ci_high"]) - v))
                have_ci = True
            else:
                lo.append(0.0)
                hi.append(0.0)
            span = _ceiling_span(c)
            if span is not None:
                ceilings.append((xi, span))
            if c.get("p_value") is not None:
                ax.annotate(f"p={float(c['p_value']):.2g}", (xi, max(v, 0) + hi[-1]),
                            textcoords="offset points", xytext=(0, 3), ha="center", fontsize=8)
        yerr = np.array([lo, hi]) if any(lo) or any(hi) else None
        ax.bar(xs, vals, width=width * 0.95, yerr=yerr, capsize=4,
               label=meas if nm > 1 else None, color=f"C{j}")
    if ceilings:
        spans = {s for _, s in ceilings}
        if len(spans) == 1:  # one ceiling for the whole figure: a line across it
            lo_, hi_ = spans.pop()
            if hi_ > lo_:
                ax.axhspan(lo_, hi_, color=".85", zorder=0, label="noise ceiling")
                ax.axhline(lo_, ls="--", color=".3")
                ax.axhline(hi_, ls="--", color=".3")
            else:
                ax.axhline(lo_, ls="--", color=".3", label="noise ceiling")
        else:  # per-bar ceilings: short dashed segments over each bar
            for k, (xi, (lo_, hi_)) in enumerate(ceilings):
                for yv in {lo_, hi_}:
                    ax.plot([xi - width / 2, xi + width / 2], [yv, yv], ls="--", color=".3",
                            label="noise ceiling" if k == 0 and yv == lo_ else None)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(x)
    ax.set_xticklabels([layer_label(layer) for layer in layers])
    ax.set_xlabel("Deep network model layer")
    ax.set_ylabel("Correlation of model layer RDM\nwith mouse V1 RDM")
    if nm > 1 or ceilings:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=9)
    caption = ("Correlation between each model layer's RDM and the mouse V1 RDM (upper triangles, diagonal "
               "excluded; measure: " + ", ".join(m or "?" for m in measures) + ")."
               + (" Error bars: confidence interval (ci_low to ci_high)." if have_ci else "")
               + (" Dashed line: noise ceiling." if ceilings else ""))
    return fig, caption


def fig_rdm_rows(run):
    ori_list = [-75, -25, 25, 75]
    n = len(ori_list)
    fig, axs = plt.subplots(1, n, figsize=(4 * n, 4), sharey=True)
    o = run.order
    xs = run.oris[o]
    for ax, target in zip(axs, ori_list):
        i = nearest_index(run.oris, target)
        for name, m in run.rdms.items():
            ax.plot(xs, np.asarray(m[i])[o], label=flat(layer_label(name)))
        ax.axvline(run.oris[i], color=".7", zorder=-1)
        ax.set_title(f"Dissimilarity with response\nto {run.oris[i]: .0f}° stimulus")
        ax.set_xlabel("Stimulus orientation (°)")
    axs[0].set_ylabel("Dissimilarity")
    axs[-1].legend(loc="upper left", bbox_to_anchor=(1, 1))
    caption = ("Rows of each RDM: dissimilarity between the response to one stimulus (grey line, the "
               "orientation nearest to -75, -25, 25 and 75 degrees) and the responses to every other stimulus.")
    return fig, caption


def fig_tuning(run, seed):
    names = list(run.resps)
    if not names:
        return None, "no resp_*.npy files: no tuning curves"
    rng = np.random.default_rng(seed)
    n = len(names)
    fig, axs = plt.subplots(1, n, figsize=(5.5 * n, 5), squeeze=False)
    o = run.order
    xs = run.oris[o]
    trial_level = run.S > 400
    picked = {}
    for ax, name in zip(axs[0], names):
        r = run.resps[name]
        # choose among units that actually vary (a dead ReLU unit is a flat line); fall back to all
        sd = np.asarray(r).std(axis=0) if r.shape[1] <= 5000 else None
        pool = np.flatnonzero(sd > 0) if sd is not None else np.arange(r.shape[1])
        if len(pool) < 3:
            pool = np.arange(r.shape[1])
        units = np.sort(rng.choice(pool, size=min(3, len(pool)), replace=False))
        picked[name] = units.tolist()
        for u in units:
            y = np.asarray(r[:, u])[o]
            if trial_level:
                ax.plot(xs, y, ".", ms=2, alpha=0.5, label=f"unit {u}")
            else:
                ax.plot(xs, y, label=f"unit {u}")
        ax.set_xticks(np.linspace(-90, 90, 5))
        ax.set_xlabel("stimulus orientation")
        ax.set_ylabel("neural response")
        ax.set_title(f"{flat(layer_label(name))} responses")
        ax.legend(fontsize=8, markerscale=4)
    desc = "; ".join(f"{flat(layer_label(k))}: {', '.join(map(str, v))}" for k, v in picked.items())
    caption = (f"Responses of 3 randomly chosen units per population against stimulus orientation "
               f"(numpy default_rng seed {seed}, units with non-zero variance). Units: {desc}.")
    if "v1" not in run.resps:
        caption += " V1 is not shown: resp_v1.npy is not in the output folder."
    return fig, caption


def tsne_settings(S):
    """t-SNE settings for S stimuli. sklearn's Barnes-Hut t-SNE costs about 5 CPU-seconds per 1,000 points
    per 100 iterations once the embedding has spread out, so trial-level runs (S = 4,598) use 500
    iterations (250 of them early exaggeration) and a coarser Barnes-Hut angle; the 181-bin runs keep
    sklearn's defaults (1,000 iterations, angle 0.5). Above TSNE_MAX_POINTS stimuli a seeded random subset
    is embedded."""
    perplexity = min(30.0, max(2.0, (S - 1) / 3.0))
    if S <= TSNE_LARGE_S:
        return dict(perplexity=perplexity, iters=1000, angle=0.5)
    return dict(perplexity=perplexity, iters=500, angle=0.8)


def _embed_worker(job):
    """PCA to min(20, units) components, then 2-D t-SNE (random_state 0). Runs in a worker process, which
    opens the .npy itself so that a 4,598 x 23,589 V1 matrix is never pickled between processes."""
    path, rows, threads = job
    t_wall, t_cpu = time.time(), time.process_time()
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    import inspect
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl ships with sklearn >= 0.23
        threadpool_limits = None

    X = np.load(path, mmap_mode="r", allow_pickle=False)
    X = np.asarray(X if rows is None else X[rows], dtype=np.float32)
    S = X.shape[0]
    k = min(20, X.shape[1], S)
    cfg = tsne_settings(S)
    params = inspect.signature(TSNE).parameters
    it_name = "max_iter" if "max_iter" in params else "n_iter"  # renamed in sklearn 1.5
    kw = dict(n_components=2, random_state=0, init="pca", learning_rate="auto",
              perplexity=cfg["perplexity"], angle=cfg["angle"], n_jobs=threads, **{it_name: cfg["iters"]})

    def run():
        Xp = PCA(n_components=k, random_state=0).fit_transform(X).astype(np.float32)
        return TSNE(**kw).fit_transform(Xp)

    if threadpool_limits is not None:
        with threadpool_limits(limits=threads):
            emb = run()
    else:
        emb = run()
    return emb, k, cfg, time.time() - t_wall, time.process_time() - t_cpu


def embed_all(run, names):
    """Embeds every population, in parallel worker processes when there is more than one core."""
    import concurrent.futures as cf
    import multiprocessing as mp

    rows = None
    if run.S > TSNE_MAX_POINTS:
        rows = np.sort(np.random.default_rng(0).choice(run.S, TSNE_MAX_POINTS, replace=False))
    ncpu = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = max(1, min(len(names), ncpu))
    threads = max(1, ncpu // workers)
    files = getattr(run, "resp_files", {})
    jobs = [(os.path.join(run.out_dir, files.get(n, f"resp_{n}.npy")), rows, threads) for n in names]
    if workers == 1:
        return [_embed_worker(j) for j in jobs], rows
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("fork")) as ex:
        return list(ex.map(_embed_worker, jobs)), rows


def fig_embedding(run):
    try:
        import sklearn  # noqa: F401
    except ImportError:
        return None, "scikit-learn is not installed (apt-get install python3-sklearn): no t-SNE figure"
    names = list(run.resps)
    if not names:
        return None, "no resp_*.npy files: no t-SNE figure"
    results, rows = embed_all(run, names)
    oris = run.oris if rows is None else run.oris[rows]
    n = len(names)
    fig, axs = plt.subplots(1, n, figsize=(4.5 * n, 4.5), squeeze=False)
    info = []
    sc = None
    for ax, name, (emb, k, cfg, wall, cpu) in zip(axs[0], names, results):
        info.append(f"{flat(layer_label(name))}: {k} PCs, {wall:.1f} s wall / {cpu:.1f} s CPU")
        sc = ax.scatter(emb[:, 0], emb[:, 1], c=oris, cmap="twilight", vmin=-90, vmax=90,
                        s=12 if len(oris) <= 400 else 3)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel("Dimension 1")
        ax.set_ylabel("Dimension 2")
        ax.set_title(flat(layer_label(name)))
    cb = fig.colorbar(sc, ax=list(axs[0]), ticks=np.linspace(-90, 90, 5))
    cb.set_label("Stimulus orientation")
    cfg = results[0][2]
    caption = (f"2-D t-SNE embedding of each population's responses (PCA to min(20, units) components, "
               f"then TSNE(init='pca', random_state=0, perplexity {cfg['perplexity']:.0f}, {cfg['iters']} "
               f"iterations, angle {cfg['angle']})), each point a stimulus coloured by orientation (cyclic "
               f"'twilight' colormap: -90 and 90 degrees are the same orientation). ")
    if rows is not None:
        caption += f"A seeded random subset of {len(rows)} of the {run.S} stimuli is embedded. "
    caption += "Time per population: " + "; ".join(info) + "."
    if "v1" not in run.resps:
        caption += " V1 is not shown: resp_v1.npy is not in the output folder."
    return fig, caption


def fig_training_loss(run):
    cnn = run.results.get("cnn") or {}
    steps = cnn.get("step_losses")
    if not steps:
        return None, "results.json has no cnn.step_losses: no training-loss figure"
    steps = np.asarray(steps, dtype=np.float64)
    epochs = int(cnn.get("epochs") or len(cnn.get("epoch_losses") or []) or 1)
    per_epoch = len(steps) / epochs
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot(np.arange(1, len(steps) + 1), steps, lw=1, label="mini-batch loss")
    ep = cnn.get("epoch_losses")
    if ep:
        ax.plot(np.arange(1, len(ep) + 1) * per_epoch, ep, "o", ms=4, label="last mini-batch of each epoch")
    for e in range(1, epochs):
        ax.axvline(e * per_epoch + 0.5, color=".85", lw=0.8, zorder=0)
    ax.set_yscale("log")
    ax.set_xlabel("mini-batch step")
    ax.set_ylabel("binary cross-entropy loss")
    ax.set_title("CNN training loss")
    ax.legend()
    caption = (f"Binary cross-entropy of every mini-batch while training the CNN ({epochs} epochs, "
               f"{per_epoch:g} steps each, batch {cnn.get('batch', '?')}, lr {_num(cnn.get('lr'))}, "
               f"momentum {_num(cnn.get('momentum'))}); log scale, grey lines mark epoch boundaries.")
    return fig, caption


def _num(v):
    if isinstance(v, float):
        return f"{v:.4g}"
    return "?" if v is None else str(v)


# ----------------------------------------------------------------------------------------------
# report


CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1200px;
     padding:0 1em;color:#222;line-height:1.4}
h1{font-size:1.6em;margin-bottom:.2em} h2{font-size:1.25em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0} td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
th{background:#f3f3f3} td.n{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:1.2em 0;padding:.5em;border:1px solid #eee} figure img{max-width:100%;height:auto}
figcaption{font-size:.9em;color:#444;margin-top:.4em} .note{color:#8a5300} .meta{color:#666;font-size:.9em}
pre{background:#f7f7f7;padding:.6em;overflow-x:auto}
"""

# Marks every <img> with data-loaded="yes"/"no" once it has decoded, and counts them on <body>, so that a
# headless browser's --dump-dom shows whether the embedded figures render.
LOAD_JS = """
function rsaMark(img, ok){ img.setAttribute('data-loaded', (ok && img.naturalWidth > 0) ? 'yes' : 'no'); }
window.addEventListener('load', function(){
  var imgs = document.images, ok = 0;
  for (var i = 0; i < imgs.length; i++) {
    if (!imgs[i].hasAttribute('data-loaded')) rsaMark(imgs[i], imgs[i].complete);
    if (imgs[i].getAttribute('data-loaded') === 'yes') ok++;
  }
  document.body.setAttribute('data-images', imgs.length);
  document.body.setAttribute('data-images-loaded', ok);
});
"""


def esc(x):
    return html.escape(str(x))


def table(header, rows, numeric=()):
    out = ["<table>"]
    if header:
        out.append("<tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>")
    for r in rows:
        cells = []
        for j, v in enumerate(r):
            cls = ' class="n"' if j in numeric else ""
            cells.append(f"<td{cls}>{esc(v)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def fmt(v, spec=".4f"):
    if v is None:
        return ""
    if isinstance(v, (int, float)):
        return format(v, spec)
    return str(v)


def config_rows(run, seed):
    r = run.results
    data = r.get("data") or {}
    v1 = r.get("v1") or {}
    st = r.get("stimuli") or {}
    cnn = r.get("cnn") or {}
    rows = [("tool", f"{r.get('tool', 'rsa_gpu')} {r.get('version', '')}".strip()),
            ("command", r.get("command", "")),
            ("device", r.get("device", "")),
            ("data source", v1.get("source") or data.get("kind", "")),
            ("V1 data", ", ".join(f"{k} {v}" for k, v in data.items())),
            ("stimuli (S)", f"{run.S}" + (f" gratings of {st.get('height')} x {st.get('width')} px" if st else "")),
            ("V1 neurons", v1.get("neurons", data.get("neurons", ""))),
            ("population sizes",
             ", ".join(f"{flat(layer_label(k))}: {v.shape[1]}" for k, v in run.resps.items())),
            ("RDM", (r.get("rdm") or {}).get("method", "")),
            ("CNN training", ", ".join(f"{k} {_num(cnn[k])}" for k in ("epochs", "batch", "lr", "momentum")
                                       if k in cnn)),
            ("seeds", f"CNN {cnn.get('seed', '?')}, data {data.get('seed', '?')}, figures (tuning units) {seed}, "
                      f"t-SNE/PCA random_state 0")]
    if "train_correct" in cnn and "train_total" in cnn:
        tot = cnn["train_total"] or 1
        rows.append(("training accuracy", f"{cnn['train_correct']} / {cnn['train_total']} "
                                          f"({100.0 * cnn['train_correct'] / tot:.1f} %)"))
    if cnn.get("misclassified_angles"):
        rows.append(("misclassified training angles",
                     ", ".join(f"{a:.2f}" for a in cnn["misclassified_angles"][:20])
                     + (" ..." if len(cnn["misclassified_angles"]) > 20 else "")))
    if cnn.get("accuracy") is not None:
        rows.append(("accuracy", _num(cnn.get("accuracy"))))
    return [(k, v) for k, v in rows if v not in ("", None)]


def correlation_table(run):
    rows = run.correlations
    if not rows:
        return "<p>No correlations in results.json.</p>"
    has = lambda k: any(c.get(k) is not None for c in rows)  # noqa: E731
    header = ["layer", "measure", "value"]
    if has("ci_low") or has("ci_high"):
        header.append("interval")
    if has("p_value"):
        header.append("p-value")
    if has("ceiling"):
        header.append("noise ceiling")
    header += ["pairs"] + (["skipped pairs"] if has("skipped_pairs") else [])
    body = []
    for c in rows:
        row = [flat(layer_label(c.get("layer", "?"))), c.get("measure", ""), fmt(c.get("value"))]
        if "interval" in header:
            row.append(f"[{fmt(c.get('ci_low'))}, {fmt(c.get('ci_high'))}]"
                       if c.get("ci_low") is not None else "")
        if "p-value" in header:
            row.append(fmt(c.get("p_value"), ".3g"))
        if "noise ceiling" in header:
            span = _ceiling_span(c)
            row.append("" if span is None else (fmt(span[0]) if span[0] == span[1]
                                                else f"[{fmt(span[0])}, {fmt(span[1])}]"))
        row.append(c.get("pairs", ""))
        if "skipped pairs" in header:
            row.append(c.get("skipped_pairs", ""))
        body.append(row)
    numeric = {j for j, h in enumerate(header) if h not in ("layer", "measure", "interval")}
    return table(header, body, numeric)


def loss_section(run):
    cnn = run.results.get("cnn") or {}
    ep = cnn.get("epoch_losses") or []
    if not ep:
        return "<p>No training losses in results.json.</p>"
    epochs = len(ep)
    every = max(1, epochs // 5)
    lines = [f"epoch {e:>3} | loss on last mini-batch: {ep[e - 1]: .2e}" for e in range(every, epochs + 1, every)]
    if epochs % every:
        lines.append(f"epoch {epochs:>3} | loss on last mini-batch: {ep[-1]: .2e}")
    return "<pre>" + esc("\n".join(lines)) + "</pre>"


def timings_table(run):
    t = run.results.get("timings_ms") or {}
    if not t:
        return "<p>No timings in results.json.</p>"
    rows = [(k[:-3] if k.endswith("_ms") else k, f"{float(v):.1f}") for k, v in t.items()
            if isinstance(v, (int, float))]
    rows.append(("total of the above", f"{sum(float(v) for _, v in rows):.1f}"))
    return table(["stage", "time (ms)"], rows, numeric={1})


def write_report(run, seed, figures, notes, path):
    r = run.results
    title = f"rsa_gpu report: CNN layers vs mouse V1 ({esc(r.get('device', '?'))}, S = {run.S})"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{title}</title>",
        f"<style>{CSS}</style>",
        f"<script>{LOAD_JS}</script>",
        "</head><body>",
        f"<h1>{title}</h1>",
        f'<p class="meta">Output folder {esc(os.environ.get("RSA_GPU_OUT_DIR") or os.path.abspath(run.out_dir))}; report written '
        f"{esc(datetime.datetime.now().strftime('%Y-%m-%d %H:%M:%S'))} by tools/make_figures.py. Reproduces "
        "Neuromatch W1D5 Tutorial 3 (representational similarity analysis of a tilt-classifying CNN "
        "and mouse V1).</p>",
        "<h2>Configuration</h2>",
        table(None, config_rows(run, seed)),
        "<h2>Correlation of model RDMs with the V1 RDM</h2>",
        correlation_table(run),
        "<h2>Training losses</h2>",
        loss_section(run),
        "<h2>Timings</h2>",
        timings_table(run),
    ]
    if notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f'<li class="note">{esc(n)}</li>' for n in notes) + "</ul>")
    parts.append("<h2>Figures</h2>")
    for k, (name, png, caption) in enumerate(figures, 1):
        b64 = base64.b64encode(png).decode("ascii")
        parts.append(
            f'<figure id="{esc(name)}"><img alt="{esc(name)}" src="data:image/png;base64,{b64}" '
            f'onload="rsaMark(this,true)" onerror="rsaMark(this,false)">'
            f"<figcaption><b>Figure {k} ({esc(name)}.png).</b> {esc(caption)}</figcaption></figure>")
    parts.append("</body></html>\n")
    atomic_write_bytes(path, "\n".join(parts).encode("utf-8"))


# ----------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description="Draw figures and an HTML report from an rsa_gpu output folder.")
    ap.add_argument("out_dir", metavar="OUT_DIR", help="folder written by `rsa_gpu --out OUT_DIR`")
    ap.add_argument("--seed", type=int, default=0, help="seed for the random tuning-curve units (default 0)")
    ap.add_argument("--results", metavar="FILE", default=None,
                    help="the run's results JSON (default OUT_DIR/results.json; rsa_gpu passes its results this way "
                         "while the folder is being written)")
    args = ap.parse_args()

    if not os.path.isdir(args.out_dir):
        fail(f"{args.out_dir} is not a directory")
    run = Run(args.out_dir, args.results)
    fig_dir = os.path.join(args.out_dir, "figures")
    os.makedirs(fig_dir, exist_ok=True)

    makers = [("stimuli", lambda: fig_stimuli(run)),
              ("rdms", lambda: fig_rdms(run)),
              ("correlations", lambda: fig_correlations(run)),
              ("rdm_rows", lambda: fig_rdm_rows(run)),
              ("tuning", lambda: fig_tuning(run, args.seed)),
              ("embedding", lambda: fig_embedding(run)),
              ("training_loss", lambda: fig_training_loss(run))]
    notes = list(run.notes)
    for n in notes:
        print(f"note: {n}")
    figures = []
    t_all = time.time()
    for name, make in makers:
        t0 = time.time()
        fig, caption = make()
        if fig is None:
            notes.append(caption)
            print(f"skipped {name}.png: {caption}")
            continue
        path = os.path.join(fig_dir, f"{name}.png")
        png = save_figure(fig, path)
        figures.append((name, png, caption))
        print(f"wrote {path} ({len(png) // 1024} KiB, {time.time() - t0:.1f} s)")

    manifest = {"figures": [f"{n}.png" for n, _, _ in figures], "notes": notes, "seed": args.seed,
                "stimuli": run.S}
    atomic_write_bytes(os.path.join(fig_dir, "manifest.json"), (json.dumps(manifest, indent=1) + "\n").encode())
    report = os.path.join(args.out_dir, "report.html")
    write_report(run, args.seed, figures, notes, report)
    print(f"wrote {report} ({os.path.getsize(report) // 1024} KiB; {len(figures)} figures, "
          f"{time.time() - t_all:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
