"""Robustness at test time, from accuracies to numbers, a table and a figure (``mke-exp robustness``).

The accuracies come from ``mke_experiments.protocol.robustness.evaluate``: one row per (method, seed,
modality perturbed, condition, noise level σ). This module only summarises them; it never touches a model.

The two summaries per curve follow MultiBench (Liang et al., "MultiBench: Multiscale Benchmarks for
Multimodal Representation Learning", NeurIPS 2021 Datasets and Benchmarks), as its own evaluation code
computes them (``eval_scripts/robustness.py`` of github.com/pliang279/MultiBench:
``relative_robustness_helper`` and ``effective_robustness_helper``):

- **relative robustness** — the area under the accuracy–imperfection curve. MultiBench sums trapezoids over
  its eleven levels 0, 0.1, …, 1 (so the area is the level-weighted mean accuracy); here the levels are the
  σ given, so the trapezoid area is divided by the span of the levels (max σ − min σ): the result is again a
  mean accuracy over the curve, in the units of accuracy, comparable between runs of different level grids.
- **effective robustness** (after Taori et al., 2020) — how the accuracy falls compared with a baseline's
  curve shifted to start at the method's own clean accuracy: MultiBench sums f(σ) − [b(σ) + f(0) − b(0)]
  over the levels with b its late-fusion (LF) baseline; here the same gap is averaged with the trapezoids of
  the relative robustness (accuracy points; > 0: it keeps more of its accuracy than the baseline). The
  baseline is a method of the same run (``mke-exp robustness --baseline``, default the teacher, the model
  MKE starts from; ``mm_student_noreg`` is the closest to MultiBench's plain late fusion), its curve the
  mean over its seeds.

MultiBench then max-min normalises both numbers over the methods of its leaderboard; that is left out here
(with two methods it gives only 0 and 1): the numbers are the raw, unnormalised ones.
"""

from __future__ import annotations

import numpy as np

from mke_theory.core.errors import MKEError
from mke_theory.results.plots import save_figure

CONDITIONS = ("noise", "removed", "zeroed")  # σ·(feature std) noise; the training mean in; features set to 0
NAMES = {"alpha": "α", "beta": "β"}


def _curve(levels, accuracy) -> tuple[np.ndarray, np.ndarray]:
    levels, accuracy = np.asarray(levels, dtype=float), np.asarray(accuracy, dtype=float)
    if levels.ndim != 1 or levels.shape != accuracy.shape:
        raise MKEError(f"levels and accuracies must be two 1-d arrays of one length, got {levels.shape} and "
                       f"{accuracy.shape}")
    if levels.size < 2 or not np.all(np.diff(levels) > 0):
        raise MKEError("a robustness curve needs at least two noise levels in increasing order")
    if not (np.all(np.isfinite(levels)) and np.all(np.isfinite(accuracy))):
        raise MKEError("noise levels and accuracies must be finite")
    return levels, accuracy


def _trapezoid_mean(levels: np.ndarray, values: np.ndarray) -> float:
    return float(np.sum((values[1:] + values[:-1]) / 2 * np.diff(levels)) / (levels[-1] - levels[0]))


def relative_robustness(levels, accuracy) -> float:
    """MultiBench's relative robustness: the trapezoid area under accuracy(σ), divided by the span of σ
    (the first level is the clean one, usually σ = 0). A flat curve gives its accuracy back."""
    levels, accuracy = _curve(levels, accuracy)
    return _trapezoid_mean(levels, accuracy)


def effective_robustness(levels, accuracy, baseline) -> float:
    """MultiBench's effective robustness: the mean (trapezoids over σ, as ``relative_robustness``) of
    f(σ) − [b(σ) + f(σ₀) − b(σ₀)], the method's curve f against the baseline's b shifted to start at f's
    clean accuracy. 0 for the baseline itself; > 0: the method loses less accuracy than the baseline."""
    levels, accuracy = _curve(levels, accuracy)
    _, baseline = _curve(levels, baseline)
    gap = (accuracy - accuracy[0]) - (baseline - baseline[0])
    return _trapezoid_mean(levels, gap)


def _mean_std(x) -> tuple[float, float]:
    x = np.asarray(x, dtype=float)
    return float(x.mean()), float(x.std(ddof=1)) if x.size > 1 else 0.0


def summarize_robustness(frame, baseline: str | None = "teacher"):
    """One row per (modality perturbed, method): mean and std over seeds of the clean accuracy, of each
    condition and level, and of the two robustness numbers.

    frame : pandas.DataFrame of ``evaluate``: columns ``label`` (method as shown), ``method``, ``multimodal``,
        ``seed``, ``modality`` ("alpha"/"beta"), ``condition`` (``CONDITIONS``), ``level`` (σ; NaN unless noise)
        and ``accuracy`` (a fraction).
    baseline : the method (a ``method`` value) whose mean curve effective robustness is measured against; None
        or a method not in the frame leaves it NaN.

    Returns a DataFrame with ``modality``, ``label``, ``method``, ``multimodal``, ``n`` (seeds) and for each
    quantity ``<name>_mean``/``<name>_std`` (fractions): ``clean``, ``removed``, ``zeroed``, ``s=<σ>`` per
    level, ``relative`` and ``effective``; ``levels`` holds the σ grid. Sorted by modality (β first), then the
    order of the labels in the frame.
    """
    import pandas as pd

    need = {"label", "method", "multimodal", "seed", "modality", "condition", "level", "accuracy"}
    if frame is None or len(frame) == 0 or not need <= set(frame.columns):
        raise MKEError(f"robustness rows need the columns {', '.join(sorted(need))}")
    noise = frame[frame["condition"] == "noise"]
    levels = np.sort(noise["level"].unique().astype(float))
    rows = []
    for modality in [m for m in ("beta", "alpha") if m in set(frame["modality"])]:
        sub = frame[frame["modality"] == modality]
        curves = {label: _curves(g[g["condition"] == "noise"], levels) for label, g in sub.groupby("label", sort=False)}
        base = None
        if baseline is not None and (sub["method"] == baseline).any():
            base_labels = list(dict.fromkeys(sub.loc[sub["method"] == baseline, "label"]))
            base = np.mean([c for label in base_labels for c in curves[label].values()], axis=0)
        for label, g in sub.groupby("label", sort=False):
            per_seed = curves[label]
            out = dict(modality=modality, label=label, method=g["method"].iloc[0],
                       multimodal=bool(g["multimodal"].iloc[0]), n=len(per_seed), levels=tuple(levels))
            values = {"clean": [c[0] for c in per_seed.values()],
                      **{f"s={s:g}": [c[i] for c in per_seed.values()] for i, s in enumerate(levels)},
                      "relative": [relative_robustness(levels, c) for c in per_seed.values()],
                      "effective": ([effective_robustness(levels, c, base) for c in per_seed.values()]
                                    if base is not None else [np.nan])}
            for condition in ("removed", "zeroed"):
                acc = g.loc[g["condition"] == condition, "accuracy"].to_numpy(dtype=float)
                values[condition] = acc[np.isfinite(acc)] if np.isfinite(acc).any() else [np.nan]
            for name, v in values.items():
                out[f"{name}_mean"], out[f"{name}_std"] = _mean_std(v)
            rows.append(out)
    return pd.DataFrame(rows)


def _curves(noise, levels: np.ndarray) -> dict:
    """seed -> accuracy at each level (a seed missing a level is an error naming it)."""
    out = {}
    for seed, g in noise.groupby("seed"):
        by_level = dict(zip(g["level"].astype(float), g["accuracy"].astype(float)))
        missing = [s for s in levels if s not in by_level]
        if missing:
            raise MKEError(f"{g['label'].iloc[0]} seed {seed} has no accuracy at σ = {missing[0]:g}")
        out[seed] = np.array([by_level[s] for s in levels])
    if levels.size < 2 or levels[0] != 0:
        raise MKEError("the noise levels must start at σ = 0 (the clean accuracy) and hold at least one more")
    return out


def _cell(row, name: str, signed: bool = False) -> str:
    mean, std = row[f"{name}_mean"], row[f"{name}_std"]
    if not np.isfinite(mean):
        return "—"
    return f"{100 * mean:+.1f} ± {100 * std:.1f}" if signed else f"{100 * mean:.1f} ± {100 * std:.1f}"


def format_robustness(summary, caption: str = "", baseline: str | None = "teacher") -> str:
    """Markdown tables, one per modality perturbed: accuracy (%) clean, with the modality removed (its
    training mean in), with its features zeroed (as modality dropout does), at each noise level σ, and the
    relative and effective robustness (mean ± std over seeds). Unimodal rows are marked where they do not
    read the modality perturbed."""
    blocks = []
    for modality, sub in summary.groupby("modality", sort=False):
        m = NAMES.get(modality, modality)
        levels = [s for s in sub["levels"].iloc[0] if s != 0]
        has_base = baseline is not None and (sub["method"] == baseline).any()
        head = (["method", "n", "clean", f"{m} removed (training mean)", f"{m} features zeroed"]
                + [f"σ={s:g}" for s in levels] + ["rel. robustness",
                                                  f"eff. robustness vs {baseline}" if has_base else "eff. robustness"])
        lines = [f"{m} perturbed at test time" + (f" — {caption}" if caption else ""),
                 "| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
        for _, row in sub.iterrows():
            name = row["label"] + ("" if row["multimodal"] or modality == "alpha" else f" (does not read {m})")
            cells = [name, str(row["n"]), _cell(row, "clean"), _cell(row, "removed"), _cell(row, "zeroed")]
            cells += [_cell(row, f"s={s:g}") for s in levels]
            cells += [_cell(row, "relative"), _cell(row, "effective", signed=True)]
            lines.append("| " + " | ".join(cells) + " |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def plot_robustness(frame, path=None, title: str = ""):
    """Accuracy (%) against the noise level σ, one panel per modality perturbed (β left, α right), one line
    per method: the mean over seeds with its 95 % Student-t interval (``stats.t_interval``) as a band. Right
    of the curves, the accuracy with the modality removed: its training mean put in ("mean in") and its
    features zeroed ("zeroed", as modality dropout does), mean with the interval as whiskers. Unimodal methods
    in the β panel do not read β: dashed horizontal reference lines. Colours: MM methods blues and greens, UM
    methods orange and reds (the palette's convention). PDF if ``path`` ends in .pdf, else PNG at 150 dpi."""
    from matplotlib.figure import Figure

    from mke_theory.results.palette import OKABE_ITO
    from mke_theory.results.stats import t_interval

    shades = dict(mm=[OKABE_ITO[c] for c in ("blue", "bluish_green", "sky_blue", "reddish_purple")],
                  um=[OKABE_ITO[c] for c in ("orange", "vermillion", "yellow", "black")])
    labels = list(dict.fromkeys(frame["label"]))
    multimodal = {label: bool(frame.loc[frame["label"] == label, "multimodal"].iloc[0]) for label in labels}
    colour = {}
    for kind, flag in (("mm", True), ("um", False)):
        for i, label in enumerate(lab for lab in labels if multimodal[lab] == flag):
            colour[label] = shades[kind][i % len(shades[kind])]
    modalities = [m for m in ("beta", "alpha") if m in set(frame["modality"])]
    fig = Figure(figsize=(6.4 * len(modalities), 4.8))
    axes = np.atleast_1d(fig.subplots(1, len(modalities), sharey=True))
    n_seeds = int(frame.groupby("label")["seed"].nunique().max())
    for ax, modality in zip(axes, modalities):
        sub = frame[frame["modality"] == modality]
        noise = sub[sub["condition"] == "noise"]
        levels = np.sort(noise["level"].unique().astype(float))
        step = max(0.3 * (levels[-1] - levels[0]), 0.4)
        x_removed = {"removed": levels[-1] + 1.3 * step, "zeroed": levels[-1] + 2.3 * step}
        drawn = [lab for lab in labels if not sub[sub["label"] == lab].empty]
        for j, label in enumerate(drawn):
            g = sub[sub["label"] == label]
            curve = [100 * noise[(noise["label"] == label) & (noise["level"] == s)]["accuracy"].to_numpy(float)
                     for s in levels]
            mean = np.array([c.mean() for c in curve])
            ci = np.array([t_interval(c) for c in curve])
            if not multimodal[label] and modality == "beta":
                ax.axhline(mean[0], color=colour[label], ls="--", lw=1.6, label=f"{label} (does not read β)")
                ax.axhspan(ci[0, 0], ci[0, 1], color=colour[label], alpha=0.10, lw=0)
                continue
            ax.fill_between(levels, ci[:, 0], ci[:, 1], color=colour[label], alpha=0.18, lw=0)
            ax.plot(levels, mean, color=colour[label], lw=2.2, marker="o", ms=5, label=label)
            shift = (j - (len(drawn) - 1) / 2) * 0.12 * step
            for condition, x in x_removed.items():
                acc = 100 * g.loc[g["condition"] == condition, "accuracy"].to_numpy(float)
                acc = acc[np.isfinite(acc)]
                if acc.size:
                    lo, hi = t_interval(acc)
                    ax.errorbar([x + shift], [acc.mean()], yerr=[[acc.mean() - lo], [hi - acc.mean()]],
                                color=colour[label], marker="s", ms=6, capsize=3, lw=1.4)
        ax.axvline(levels[-1] + 0.65 * step, color="#9A9A9A", lw=0.8, ls=":")
        ax.set_xticks(list(levels) + list(x_removed.values()))
        ax.set_xticklabels([f"{s:g}" for s in levels] + ["removed:\nmean in", "removed:\nzeroed"])
        ax.set_xlim(levels[0] - 0.3 * step, x_removed["zeroed"] + 0.6 * step)
        m = NAMES.get(modality, modality)
        ax.set_xlabel(f"noise on {m}: σ × the feature's training std", fontsize=11)
        ax.set_title(f"{m} perturbed at test time", fontsize=11.5)
        ax.grid(alpha=0.3, lw=0.6)
        ax.legend(fontsize=9, loc="lower left", frameon=False)
    axes[0].set_ylabel("test accuracy (%)", fontsize=11)
    fig.suptitle((title + "; " if title else "") + f"mean over seeds, bands and whiskers: 95 % CI ({n_seeds} seeds)",
                 fontsize=11.5)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    save_figure(fig, path)
    return fig
