"""The figure of ``mke-exp sweep``: MKE's gain against teacher strength; matplotlib is imported only when drawn."""

from __future__ import annotations

import numpy as np

from mke_theory.core.errors import MKEError
from mke_theory.results.palette import GREY, MODALITY_COLOURS, OKABE_ITO
from mke_theory.results.plots import save_figure


def _band(rows: list[dict], key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, low, high) of ``key`` over ``rows`` as float arrays; None becomes NaN (nothing drawn there)."""
    get = lambda k: np.array([np.nan if r[k] is None else r[k] for r in rows], float)  # noqa: E731
    return get(key), get(f"{key}_low"), get(f"{key}_high")


def plot_sweep(rows: list[dict], path=None, title: str = ""):
    """Two panels against the number of labels of D_l (log x): left, the teacher (UM, orange) and the MM
    student (blue), mean over seeds with its 95 % t interval as a band; right, the measured gain MM − teacher
    with its paired 95 % interval as whiskers, and the check's predicted gain with its interval beside it
    (shifted a little to the right, open markers, dashed whiskers), over a line at 0. ``rows``: the sweep's
    rows (``mke_experiments.protocol.sweep.sweep_row``: numbers in points). PDF if ``path`` ends in .pdf,
    else PNG at 150 dpi."""
    if not rows:
        raise MKEError("the sweep has no sizes to draw")
    from matplotlib.figure import Figure

    rows = sorted(rows, key=lambda r: r["size"])
    sizes = np.array([r["size"] for r in rows], float)
    fig = Figure(figsize=(12.0, 4.6))
    left, right = fig.subplots(1, 2)
    for key, label, colour in (("teacher", "teacher (α)", MODALITY_COLOURS["um"]),
                               ("mm", "MM student (α, β)", MODALITY_COLOURS["mm"])):
        mean, low, high = _band(rows, key)
        # an accuracy lies in [0, 100]: the band is cut there (two seeds' t interval easily spans more)
        left.fill_between(sizes, np.clip(low, 0, 100), np.clip(high, 0, 100), color=colour, alpha=0.18, lw=0)
        left.plot(sizes, mean, color=colour, lw=2.2, marker="o", ms=5, label=label)
    left.set_ylabel("test accuracy (%)", fontsize=11)
    left.set_title("teacher and MM student", fontsize=11.5)

    shift = 1.06  # the prediction beside the measurement, on the log axis
    gain, low, high = _band(rows, "gain")
    right.axhline(0, color=GREY, lw=1.0)
    right.errorbar(sizes, gain, yerr=_whiskers(gain, low, high), color=OKABE_ITO["black"], marker="o", ms=6,
                   capsize=3, lw=1.6, label="measured: MM − teacher (paired 95 % CI)")
    pred, p_low, p_high = _band(rows, "check")
    if np.isfinite(pred).any():
        bars = right.errorbar(sizes * shift, pred, yerr=_whiskers(pred, p_low, p_high),
                              color=OKABE_ITO["vermillion"], marker="s", ms=6, mfc="white", capsize=3, lw=1.2, ls=":",
                              label="the check's prediction (its 95 % interval)")
        bars[-1][0].set_linestyle("--")
    right.set_ylabel("gain over the teacher (points)", fontsize=11)
    right.set_title("MKE's gain: measured and predicted", fontsize=11.5)
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_xticks(sizes)
        ax.set_xticklabels([f"{s:g}" for s in sizes])
        ax.minorticks_off()
        ax.set_xlabel("labeled samples (D_l)", fontsize=11)
        ax.grid(alpha=0.3, lw=0.6)
        ax.legend(fontsize=9, frameon=False, loc="best")
    n = max(r["n"] for r in rows)
    fig.suptitle((title + "; " if title else "") + f"{n} seeds, bands and whiskers: 95 % CI", fontsize=11.5)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    save_figure(fig, path)
    return fig


def _whiskers(mean: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """matplotlib's yerr (2, n) from interval ends; a missing end (one seed: no interval) draws no whisker."""
    return np.nan_to_num(np.vstack([mean - low, high - mean]), nan=0.0).clip(min=0.0)
