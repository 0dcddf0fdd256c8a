"""Qualitative NYU Depth V2 results: RGB, depth, ground truth, MM student, UM teacher and NOISY
student on the first four test images (the paper's Figure 3 layout), from the predictions that
``mke-exp run nyudv2 --out runs/nyudv2`` saves beside its records."""

import sys

import numpy as np
from _common import arguments, records_command, records_for, write_figure

from mke_theory.core.methods import LABELS

args = arguments(__doc__.splitlines()[0], "runs/nyudv2")
records = records_for(args.runs, "nyudv2", records_command("nyudv2", args.runs), needs_data=True,
                      outputs=[args.out / "nyudv2_figure.png", args.out / "nyudv2_figure.pdf"])
if records is None:
    sys.exit(0)
folder = args.runs / "examples"
first = min(records, key=lambda r: r["seed"])
seed, chash, split_id = first["seed"], first["config_hash"], first["split_id"]
shown = folder / f"nyudv2__inputs__{split_id}.npz"
columns = [(m, LABELS[m]) for m in ("mm_student", "teacher", "noisy_student")]
paths = {m: folder / f"nyudv2__{m}__seed{seed}__{chash}.npz" for m, _ in columns}
missing = [str(p) for p in [shown, *paths.values()] if not p.exists()]
if missing:
    sys.exit(f"Error: the example predictions are missing ({', '.join(missing)}); "
             f"run mke-exp run nyudv2 --out {args.runs}")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

inputs = np.load(shown)
rgb = inputs["alpha"].transpose(0, 2, 3, 1)
rgb = (rgb - rgb.min()) / (rgb.max() - rgb.min() + 1e-9)  # normalised RGB back to a displayable range
depth = inputs["beta"][:, 0]
labels = inputs["labels"]
preds = {m: np.load(p)["pred"] for m, p in paths.items()}
# 40 distinguishable class colours (tab20 + tab20b), void (−1) black
colours = np.vstack([[0, 0, 0, 1], matplotlib.colormaps["tab20"](np.arange(20)),
                     matplotlib.colormaps["tab20b"](np.arange(20))])
cmap = ListedColormap(colours)
show = lambda a: np.where(a < 0, -1, a) + 1  # noqa: E731  (−1 → 0 = black)
n = len(labels)
fig = Figure(figsize=(2.4 * 6, 2.0 * n + 0.6), layout="constrained")
axes = fig.subplots(n, 6, squeeze=False)
titles = ["RGB", "depth", "ground truth"] + [t for _, t in columns]
for i in range(n):
    panels = [rgb[i], depth[i], show(labels[i])] + [show(preds[m][i]) for m, _ in columns]
    for j, (ax, img) in enumerate(zip(axes[i], panels)):
        if j == 0:
            ax.imshow(img)
        elif j == 1:
            ax.imshow(img, cmap="viridis")
        else:
            ax.imshow(img, cmap=cmap, vmin=0, vmax=40, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        if i == 0:
            ax.set_title(titles[j], fontsize=11)
fig.suptitle(f"NYU Depth V2 test images, seed {seed}; black: void / unlabeled", fontsize=12)
write_figure(fig, args.out, "nyudv2_figure")
