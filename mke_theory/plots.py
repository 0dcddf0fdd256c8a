"""Figures of finished runs; matplotlib is imported only when a figure is drawn."""

from __future__ import annotations

from pathlib import Path

import numpy as np

# seaborn's "colorblind" palette, first two colours (blue, orange), hard-coded to avoid importing seaborn.
STRONG = ("#0173B2", "#DE8F05")
LIGHT = ("#B3D5E8", "#F5DDB4")  # the same colours blended ~70 % with white, for decision regions
GREY = "#9A9A9A"
REG_LABELS = {"none": "no perturbation", "input_noise": "input noise", "feature_noise": "feature noise",
              "dropout": "dropout", "all": "input + feature noise + dropout"}


def _member(students: dict, keys, seed, seeds):
    """(model, index, seed) of the first key present; the member trained with ``seed`` if it exists."""
    model, i = next(students[k] for k in keys if k in students)
    first = model.seeds_[i]
    # run_twomoon stores the members of one (method, variant) contiguously, in the config's seed order
    j = i + list(seeds).index(seed) if seed is not None else i
    if j < len(model.seeds_) and model.seeds_[j] == seed:
        return model, j, seed
    return model, i, first  # the first seed's member (the naive UM student of a default run has no other)


def plot_twomoon(result, path=None, member_seed=None):
    """Redraw the paper's six-panel TwoMoon figure from a finished ``run_twomoon`` result.

    Parameters
    ----------
    result : TwoMoonResult
        A finished run; its teacher, pseudo labels and ``students`` models are drawn.
    path : str or Path, optional
        Where to save the figure: PDF if it ends in ``.pdf``, else PNG at 150 dpi; folders are made.
    member_seed : int, optional
        Which student seed to draw (default: the first of ``result.config.student_seeds``).  A model
        trained for the first seed only (the naive UM student of a default run) keeps that seed,
        and its panel title says so.

    Returns
    -------
    matplotlib.figure.Figure
        A 2 × 3 figure: data, teacher, pseudo labels, naive UM, regularised UM and MM students,
        each decision panel with its test accuracy (%) in the lower right corner.
    """
    from matplotlib.figure import Figure  # no pyplot: no global backend is chosen or changed
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    cfg, sp = result.config, result.split
    reg, seeds = cfg.regularizer, cfg.student_seeds
    if member_seed is not None and member_seed not in seeds:
        raise ValueError(f"member_seed must be one of the run's seeds {seeds}, got {member_seed}")
    naive = _member(result.students, [("um_student_noreg", "none"), ("um_student_noreg", "figure"),
                                      ("um_student", "none")], member_seed, seeds)
    um = _member(result.students, [("um_student", reg)], member_seed, seeds)
    mm = _member(result.students, [("mm_student", reg)], member_seed, seeds)
    seed = member_seed if member_seed is not None else seeds[0]

    pts = np.vstack([sp.labeled_alpha[:, :1], sp.unlabeled_alpha, sp.test_alpha])
    ys = np.vstack([sp.unlabeled_beta, sp.test_beta])
    gx, gy = np.meshgrid(np.linspace(pts.min() - 0.4, pts.max() + 0.4, 250),
                         np.linspace(ys.min() - 0.4, ys.max() + 0.4, 250))
    grid = np.column_stack([gx.ravel(), gy.ravel()])
    test_xy = np.column_stack([sp.test_alpha[:, 0], sp.test_beta[:, 0]])

    fig = Figure(figsize=(15, 9.5))
    axes = fig.subplots(2, 3, sharex=True, sharey=True).ravel()

    def scatter(ax, xy, colour_by, wrong=None, size=18):
        wrong = np.zeros(len(xy), bool) if wrong is None else wrong
        for k in (0, 1):
            ok, bad = (colour_by == k) & ~wrong, (colour_by == k) & wrong
            ax.scatter(*xy[ok].T, s=size, color=STRONG[k], edgecolor="white", linewidth=0.4)
            ax.scatter(*xy[bad].T, s=size * 2.2, color=STRONG[k], marker="X", edgecolor="black", linewidth=0.6)

    def box(ax, text, top=False):
        ax.text(0.97, 0.96 if top else 0.04, text, transform=ax.transAxes, ha="right",
                va="top" if top else "bottom", fontsize=12,
                bbox=dict(boxstyle="round,pad=0.3", facecolor="white", edgecolor="0.4", alpha=0.9))

    def regions(ax, model, i, x_grid, x_test):
        pred = model.predict(x_grid)[i].reshape(gx.shape)
        ax.contourf(gx, gy, pred, levels=[-0.5, 0.5, 1.5], colors=LIGHT)
        ax.contour(gx, gy, pred, levels=[0.5], colors="0.35", linewidths=1.2)
        test_pred = model.predict(x_test)[i]
        scatter(ax, test_xy, sp.test_labels, wrong=test_pred != sp.test_labels)
        box(ax, f"test acc. {100 * np.mean(test_pred == sp.test_labels):.1f} %")

    ax = axes[0]  # (a) the data; D_l has no β, so it is drawn as a strip along the α axis
    ax.scatter(sp.unlabeled_alpha[:, 0], sp.unlabeled_beta[:, 0], s=12, color=GREY, alpha=0.7)
    strip = np.full(len(sp.labels), gy.min() + 0.2)
    scatter(ax, np.column_stack([sp.labeled_alpha[:, 0], strip]), sp.labels, size=55)
    ax.axhline(strip[0], color="0.75", lw=0.8, zorder=0)
    ax.text(0.03, 0.11, "$D_l$: α only", transform=ax.transAxes, fontsize=11)
    box(ax, f"{len(sp.labels)} labeled, {len(sp.unlabeled_alpha)} unlabeled", top=True)
    ax.set_title("(a) Data: $D_l$ (α, labeled), $D_u$ (α, β, grey)")

    regions(axes[1], result.teacher, 0, grid[:, :1], sp.test_alpha)
    axes[1].set_title(f"(b) Teacher on α (seed {cfg.teacher_seed}), test set")

    ax = axes[2]  # (c) pseudo labels on D_u
    du = np.column_stack([sp.unlabeled_alpha[:, 0], sp.unlabeled_beta[:, 0]])
    wrong = None if sp.unlabeled_labels is None else result.pseudo_labels != sp.unlabeled_labels
    scatter(ax, du, result.pseudo_labels, wrong=wrong)
    if wrong is not None:
        box(ax, f"pseudo-label acc. {100 * result.pseudo_label_accuracy:.1f} %")
    ax.set_title("(c) Teacher's pseudo labels on $D_u$")

    for ax, (model, i, s), title, x_grid, x_test in (
        (axes[3], naive, "(d) Naive UM student (no perturbation)", grid[:, :1], sp.test_alpha),
        (axes[4], um, f"(e) UM student + {REG_LABELS.get(reg, reg)}", grid[:, :1], sp.test_alpha),
        (axes[5], mm, "(f) MM student on (α, β): MKE", grid, sp.test_multimodal),
    ):
        regions(ax, model, i, x_grid, x_test)
        ax.set_title(title + ("" if s == seed else f" [seed {s}]"))

    for ax in axes:
        ax.set_title(ax.get_title(), fontsize=12.5)
        ax.tick_params(labelsize=10, labelbottom=True, labelleft=True)
        ax.set_xlabel("α (x)", fontsize=12)
        ax.set_ylabel("β (y)", fontsize=12)
    handles = [Line2D([], [], ls="", marker="o", ms=8, color=STRONG[k], label=f"class {k}") for k in (0, 1)]
    handles += [Line2D([], [], ls="", marker="o", ms=6, color=GREY, label="$D_u$ (unlabeled)"),
                Line2D([], [], ls="", marker="X", ms=9, color="0.6", mec="black",
                       label="wrong prediction / pseudo label"),
                Patch(facecolor=LIGHT[0], edgecolor="0.6", label="region: predicts class 0"),
                Patch(facecolor=LIGHT[1], edgecolor="0.6", label="region: predicts class 1")]
    fig.legend(handles=handles, loc="lower center", ncol=6, fontsize=11, frameon=False)
    n = len(seeds)
    fig.suptitle(f"TwoMoon: students of seed {seed} ({'first' if seed == seeds[0] else 'one'} "
                 f"of {n} run{'s' * (n > 1)}); points in (b), (d)–(f) are the test set", fontsize=15)
    fig.tight_layout(rect=(0, 0.045, 1, 0.97))
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=150, format="pdf" if path.suffix.lower() == ".pdf" else "png")
    return fig
