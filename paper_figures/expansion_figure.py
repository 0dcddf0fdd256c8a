"""Expansion c (certified lower bound to searched upper bound) and separation μ of the UM and MM spaces against
the radius of the ball B(x), at one pseudo-label error η of the simulate sweep."""

import sys

import numpy as np
from _common import arguments, records_for, write_figure

from mke_theory.results.plots import SIMULATE_TASK, SPACES

args = arguments(__doc__.splitlines()[0], "runs/simulate")
records = records_for(args.runs, SIMULATE_TASK, f"mke-theory simulate --noise 0,0.1,0.2,0.3,0.4 --out {args.runs}",
                      outputs=[args.out / "expansion_figure.png", args.out / "expansion_figure.pdf"])
if records is None:
    sys.exit(0)


def sweep_case(records):
    """(split, teacher's classes on the validation data, η, config) of the sweep: the data simulate checked, at
    the sweep's median η above 0 (the check's ā needs a teacher that errs)."""
    from mke_theory.generators import make_split
    from mke_theory.noise import make_pseudo_labels
    from mke_theory.toy.simulate import _labeller_rng

    teachers = [r for r in records if r["method"] == "teacher"]
    if not teachers:
        sys.exit("Error: these simulate records hold no teacher rows; rerun mke-theory simulate")
    config = teachers[0]["config"]
    etas = sorted({float(r["config"]["eta"]) for r in teachers})
    errs = [e for e in etas if e > 0] or etas
    eta = errs[len(errs) // 2]
    split = make_split(config["generator"], random_state=config["data_seed"])
    teacher = make_pseudo_labels(config["noise_model"], split.test_labels, eta, alpha=split.test_alpha,
                                 n_classes=split.n_classes, random_state=_labeller_rng(config["data_seed"] + 1, eta))
    return split, teacher, eta, config


def draw(profile, title):
    """Two panels against r / r_T (log scale): c as a band from the certified lower bound (solid) to the searched
    upper bound (dashed), c = +inf as a triangle at the top edge, the line c = 3; and μ over pairs within 2r.
    UM orange squares, MM blue circles, drawn with a small offset so that neither hides the other."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12.5, 5.2))
    cx, mx = fig.subplots(1, 2)
    finite = [v for s, *_ in SPACES for k in ("c_lower", "c_upper") for v in profile[s][k] if np.isfinite(v)]
    cap = max(4.0, 1.15 * max(finite, default=4.0))
    for k, (space, label, colour) in enumerate(SPACES):
        p = profile[space]
        x = p["scale"] * (1.03 if k else 1 / 1.03)
        marker = "o" if space == "mm" else "s"
        low, high = np.minimum(p["c_lower"], cap), np.minimum(p["c_upper"], cap)
        cx.fill_between(x, low, high, color=colour, alpha=0.18, lw=0)
        cx.plot(x, low, color=colour, lw=2.2, marker=marker, ms=6, label=f"{label}: c, certified lower bound")
        cx.plot(x, high, color=colour, lw=1.4, ls="--", marker=marker, ms=5, mfc="white",
                label=f"{label}: c, search upper bound")
        inf = ~np.isfinite(p["c_lower"])
        cx.plot(x[inf], np.full(inf.sum(), cap), ls="", marker="^", ms=11, color=colour)
        mx.plot(x, p["mu"], color=colour, lw=2.2, marker=marker, ms=6, label=label)
    cx.axhline(3.0, color="black", lw=1.1, ls=":", label="Thm 4.3 needs c > 3")
    for ax in (cx, mx):
        ax.set_xscale("log", base=2)
        ax.axvline(1.0, color="grey", lw=1, ls="-.")
        ax.set_xlabel("radius r / r_T (r_T: the ball of the student's perturbation T, a = "
                      f"{profile['input_noise']:g})")
        ax.grid(alpha=0.3)
    cx.set_ylim(0.8, cap * 1.08)
    cx.set_ylabel(f"expansion c over sets of class mass ≤ ā = {profile['a_bar']:.2f}  (▲: c = +inf)")
    mx.set_ylabel("separation μ (pairs of validation samples within 2r)")
    mx.set_ylim(-0.03, 1.03)
    cx.legend(fontsize=8, loc="upper left")
    mx.legend(fontsize=9, loc="lower right")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return fig


def profiles(split, teacher, input_noise: float = 0.5) -> dict:
    """The figure's curves: ``expansion.space_profiles`` of the check's two spaces (the test set as the labeled
    validation data, z-scored with D_u's statistics; sets of mass ≤ ā; radii around the ball of T)."""
    from mke_theory import diagnose
    from mke_theory.expansion.profile import space_profiles

    za, va = diagnose._zscore(split.unlabeled_alpha, split.test_alpha)
    zb, vb = diagnose._zscore(split.unlabeled_beta, split.test_beta)
    a_bar = diagnose._a_bar(split.test_labels, teacher)
    spaces = {"um": (va, diagnose.t_radius([za], input_noise)),
              "mm": (np.hstack([va, vb]), diagnose.t_radius([za, zb], input_noise))}
    return dict(space_profiles(spaces, split.test_labels, a_bar), a_bar=a_bar, input_noise=input_noise)


split, teacher, eta, config = sweep_case(records)
profile = profiles(split, teacher)
write_figure(draw(profile, f"{config['generator']} data, {config['noise_model']} teacher error η = {eta:g}: "
                  "Thm 4.3's c and μ on the validation data against the ball's radius"), args.out, "expansion_figure")
