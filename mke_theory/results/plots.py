"""Figures of finished runs; matplotlib is imported only when a figure is drawn."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mke_theory.core.errors import MKEError
from mke_theory.core.methods import get_method, methods_of
from mke_theory.results.palette import CLASS_COLOURS, CLASS_REGIONS, GREY, MODALITY_COLOURS

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


def plot_twomoon(result, path=None, member_seed=None, n_runs=None):
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
    n_runs : int, optional
        How many student runs the drawn seed is one of, for the title (default: the result's seeds).
        ``paper_figures/twomoon_figure.py`` retrains one recorded seed and passes how many the
        records hold, so the title does not say "(first of 1 run)" beside ten records.

    Returns
    -------
    matplotlib.figure.Figure
        A 2 × 3 figure: data, teacher, pseudo labels, naive UM, regularised UM and MM students,
        each decision panel with its test accuracy (%) in the lower right corner.
    """
    from matplotlib.figure import Figure  # no pyplot: no global backend is chosen or changed

    cfg, sp = result.config, result.split
    reg, seeds = cfg.regularizer, cfg.student_seeds
    if member_seed is not None and member_seed not in seeds:
        raise MKEError(f"member_seed must be one of the run's seeds {seeds}, got {member_seed}")
    naive = _member(result.students, [("um_student_noreg", "none"), ("um_student_noreg", "figure"),
                                      ("um_student", "none")], member_seed, seeds)
    um = _member(result.students, [("um_student", reg)], member_seed, seeds)
    mm = _member(result.students, [("mm_student", reg)], member_seed, seeds)
    seed = member_seed if member_seed is not None else seeds[0]

    mesh = _moon_mesh(sp)
    grid = np.column_stack([mesh[0].ravel(), mesh[1].ravel()])
    test_xy = np.column_stack([sp.test_alpha[:, 0], sp.test_beta[:, 0]])

    fig = Figure(figsize=(15, 9.5))
    axes = fig.subplots(2, 3, sharex=True, sharey=True).ravel()
    _moon_data_panel(axes[0], sp, mesh[1])
    _moon_decision_panel(axes[1], result.teacher, 0, grid[:, :1], sp.test_alpha, mesh, test_xy, sp.test_labels)
    axes[1].set_title(f"(b) Teacher on α (seed {cfg.teacher_seed}), test set")
    _moon_pseudo_label_panel(axes[2], result)
    for ax, (model, i, s), title, x_grid, x_test in (
        (axes[3], naive, "(d) Naive UM student (no perturbation)", grid[:, :1], sp.test_alpha),
        (axes[4], um, f"(e) UM student + {REG_LABELS.get(reg, reg)}", grid[:, :1], sp.test_alpha),
        (axes[5], mm, "(f) MM student on (α, β): MKE", grid, sp.test_multimodal),
    ):
        _moon_decision_panel(ax, model, i, x_grid, x_test, mesh, test_xy, sp.test_labels)
        ax.set_title(title + ("" if s == seed else f" [seed {s}]"))

    _moon_axes_style(axes)
    fig.legend(handles=_moon_legend_handles(), loc="lower center", ncol=6, fontsize=11, frameon=False)
    n = len(seeds) if n_runs is None else n_runs
    fig.suptitle(f"TwoMoon: students of seed {seed} ({'first' if seed == seeds[0] else 'one'} "
                 f"of {n} run{'s' * (n > 1)}); points in (b), (d)–(f) are the test set", fontsize=15)
    fig.tight_layout(rect=(0, 0.045, 1, 0.97))
    save_figure(fig, path)
    return fig


def _moon_mesh(sp) -> tuple[np.ndarray, np.ndarray]:
    """(gx, gy), each (250, 250): the grid the decision regions are drawn on, spanning every point of the
    split (α of D_l, D_u and the test set on x; β of D_u and the test set on y) with a 0.4 margin."""
    pts = np.vstack([sp.labeled_alpha[:, :1], sp.unlabeled_alpha, sp.test_alpha])
    ys = np.vstack([sp.unlabeled_beta, sp.test_beta])
    return np.meshgrid(np.linspace(pts.min() - 0.4, pts.max() + 0.4, 250),
                       np.linspace(ys.min() - 0.4, ys.max() + 0.4, 250))


def _moon_scatter(ax, xy, colour_by, wrong=None, size=18) -> None:
    """Points ``xy`` (n, 2) coloured by class ``colour_by`` (n,); those flagged in ``wrong`` (n,) bool as crosses."""
    wrong = np.zeros(len(xy), bool) if wrong is None else wrong
    for k in (0, 1):
        ok, bad = (colour_by == k) & ~wrong, (colour_by == k) & wrong
        ax.scatter(*xy[ok].T, s=size, color=CLASS_COLOURS[k], edgecolor="white", linewidth=0.4)
        ax.scatter(*xy[bad].T, s=size * 2.2, color=CLASS_COLOURS[k], marker="X", edgecolor="black", linewidth=0.6)


def _moon_box(ax, text, top=False) -> None:
    """``text`` in a white box in the lower (or upper) right corner of ``ax``."""
    ax.text(0.97, 0.96 if top else 0.04, text, transform=ax.transAxes, ha="right",
            va="top" if top else "bottom", fontsize=12,
            bbox=dict(boxstyle="round,pad=0.3", facecolor="white", edgecolor="0.4", alpha=0.9))


def _moon_decision_panel(ax, model, i, x_grid, x_test, mesh, test_xy, test_labels) -> None:
    """Member ``i`` of ``model``: its decision regions on ``x_grid`` (250², d) over ``mesh`` (gx, gy), the test
    points ``test_xy`` (n_test, 2) with its mistakes crossed (predicted from ``x_test``) and its test accuracy."""
    gx, gy = mesh
    pred = model.predict(x_grid)[i].reshape(gx.shape)
    ax.contourf(gx, gy, pred, levels=[-0.5, 0.5, 1.5], colors=CLASS_REGIONS)
    ax.contour(gx, gy, pred, levels=[0.5], colors="0.35", linewidths=1.2)
    test_pred = model.predict(x_test)[i]
    _moon_scatter(ax, test_xy, test_labels, wrong=test_pred != test_labels)
    _moon_box(ax, f"test acc. {100 * np.mean(test_pred == test_labels):.1f} %")


def _moon_data_panel(ax, sp, gy) -> None:
    """Panel (a), the data; D_l has no β, so it is drawn as a strip along the α axis, just above ``gy``'s bottom."""
    ax.scatter(sp.unlabeled_alpha[:, 0], sp.unlabeled_beta[:, 0], s=12, color=GREY, alpha=0.7)
    strip = np.full(len(sp.labels), gy.min() + 0.2)
    _moon_scatter(ax, np.column_stack([sp.labeled_alpha[:, 0], strip]), sp.labels, size=55)
    ax.axhline(strip[0], color="0.75", lw=0.8, zorder=0)
    ax.text(0.03, 0.11, "$D_l$: α only", transform=ax.transAxes, fontsize=11)
    _moon_box(ax, f"{len(sp.labels)} labeled, {len(sp.unlabeled_alpha)} unlabeled", top=True)
    ax.set_title("(a) Data: $D_l$ (α, labeled), $D_u$ (α, β, grey)")


def _moon_pseudo_label_panel(ax, result) -> None:
    """Panel (c): the teacher's pseudo labels on D_u, wrong ones crossed when D_u's labels are known."""
    sp = result.split
    du = np.column_stack([sp.unlabeled_alpha[:, 0], sp.unlabeled_beta[:, 0]])
    wrong = None if sp.unlabeled_labels is None else result.pseudo_labels != sp.unlabeled_labels
    _moon_scatter(ax, du, result.pseudo_labels, wrong=wrong)
    if wrong is not None:
        _moon_box(ax, f"pseudo-label acc. {100 * result.pseudo_label_accuracy:.1f} %")
    ax.set_title("(c) Teacher's pseudo labels on $D_u$")


def _moon_axes_style(axes) -> None:
    """The six panels' shared title size, ticks and axis labels."""
    for ax in axes:
        ax.set_title(ax.get_title(), fontsize=12.5)
        ax.tick_params(labelsize=10, labelbottom=True, labelleft=True)
        ax.set_xlabel("α (x)", fontsize=12)
        ax.set_ylabel("β (y)", fontsize=12)


def _moon_legend_handles() -> list:
    """The figure legend's entries: the two classes, D_u, a wrong prediction and the two regions."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [Line2D([], [], ls="", marker="o", ms=8, color=CLASS_COLOURS[k], label=f"class {k}") for k in (0, 1)]
    handles += [Line2D([], [], ls="", marker="o", ms=6, color=GREY, label="$D_u$ (unlabeled)"),
                Line2D([], [], ls="", marker="X", ms=9, color="0.6", mec="black",
                       label="wrong prediction / pseudo label"),
                Patch(facecolor=CLASS_REGIONS[0], edgecolor="0.6", label="region: predicts class 0"),
                Patch(facecolor=CLASS_REGIONS[1], edgecolor="0.6", label="region: predicts class 1")]
    return handles


# ---- noise sweep (``mke-theory simulate`` records) ----------------------------------------------

SIMULATE_TASK = "simulate"  # mke_theory.toy.simulate.TASK, repeated here so plotting does not import torch
# method, label, colour, dashed: the simulation's students from the method table; UM orange, MM blue,
# unregularised students dashed
SWEEP_STUDENTS = tuple(
    (m.name, m.label, MODALITY_COLOURS[m.modality], not m.regularised)
    for m in map(get_method, methods_of("simulate")) if not m.is_teacher)
SPACES = (("um", "UM space (α)", MODALITY_COLOURS["um"]), ("mm", "MM space (α, β)", MODALITY_COLOURS["mm"]))
BOUND_LABEL = "bound (Wei et al. 2021, Thm 4.3)"
_CONFIG_FREE = ("eta", "regularizer")  # config keys that may differ within one sweep


def _eta_of_variant(variant: str) -> float:
    key, _, value = str(variant).partition("=")
    if key != "eta" or not value:
        raise MKEError(f"variant {variant!r} does not name a pseudo-label error (expected 'eta=0.3')")
    return float(value)


def _sweep(data):
    """(tidy frame of the simulate task with an ``eta`` column, shared config or {}) from records or a frame."""
    import pandas as pd

    from mke_theory.results.stats import FRAME_COLUMNS, records_frame

    config = {}
    if isinstance(data, pd.DataFrame):
        missing = [c for c in FRAME_COLUMNS if c not in data.columns]
        if missing:
            raise MKEError(f"frame misses column(s) {', '.join(missing)}; pass records or records_frame(records)")
        frame = data[data["task"] == SIMULATE_TASK].copy()
        frame["eta"] = frame["variant"].map(_eta_of_variant)
    else:
        records = [r for r in data if r["task"] == SIMULATE_TASK]
        shared = {tuple(sorted((k, repr(v)) for k, v in r["config"].items() if k not in _CONFIG_FREE))
                  for r in records}
        if len(shared) > 1:
            differ = sorted({k for k, _ in set.union(*map(set, shared)) - set.intersection(*map(set, shared))})
            raise MKEError(f"the records hold several sweeps (their configs differ in {', '.join(differ)}); "
                             "pass the records of one sweep")
        if records:
            config = {k: v for k, v in records[0]["config"].items() if k not in _CONFIG_FREE}
            regularised = {r["config"].get("regularizer") for r in records
                           if r["method"] in ("um_student", "mm_student")}
            if len(regularised) == 1:
                config["regularizer"] = regularised.pop()
        frame = records_frame(records)
        frame["eta"] = [float(r["config"]["eta"]) for r in records for _ in r["metrics"]]
    if frame.empty:
        raise MKEError(f"no records of task {SIMULATE_TASK!r} (mke-theory simulate)")
    duplicated = frame.duplicated(["method", "eta", "seed", "metric"])
    if duplicated.any():
        r = frame[duplicated].iloc[0]
        raise MKEError(f"several runs of {r['method']} at η = {r['eta']:g}, seed {r['seed']}; "
                         "pass the records of one sweep")
    return frame, config


def _cells(frame, metric: str, method: str, finite_only: bool = False):
    """Per-η summary (stats.summarize) of ``metric`` for ``method``, sorted by η; None if absent."""
    import pandas as pd

    from mke_theory.results.stats import summarize

    sub = frame[(frame["method"] == method) & (frame["metric"] == metric)]
    if finite_only:
        sub = sub[np.isfinite(sub["value"].to_numpy(dtype=float))]
    if sub.empty:
        return None
    summary = summarize(sub, metric)
    etas = sub.drop_duplicates("variant").set_index("variant")["eta"]
    summary["eta"] = summary["variant"].map(etas).astype(float)
    return summary.sort_values("eta", kind="mergesort").reset_index(drop=True).pipe(pd.DataFrame)


def save_figure(fig, path) -> None:
    """Write ``fig`` to ``path`` (PDF when it ends in .pdf, else PNG at 150 dpi), its folder made; None: nothing."""
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=150, format="pdf" if path.suffix.lower() == ".pdf" else "png")


def _title(config: dict, what: str) -> str:
    if not config:
        return what
    return f"{what}: {config.get('generator', '?')} data, {config.get('noise_model', '?')} pseudo-label noise"


def _suptitle(fig, text: str, fontsize: float) -> float:
    """Put ``text`` above ``fig``, broken at "; " into lines that fit its width (never clipped at the
    edges); returns the top of the room left for the axes, for ``tight_layout(rect=...)``."""
    fits = int(fig.get_figwidth() * 72 / (0.6 * fontsize))  # characters of average width per line
    lines = []
    for piece in text.split("; "):
        if lines and len(lines[-1]) + 2 + len(piece) <= fits:
            lines[-1] += "; " + piece
        else:
            lines.append(piece)
    fig.suptitle("\n".join(lines), fontsize=fontsize)
    return 1 - (0.05 + 0.045 * (len(lines) - 1)) * 5.6 / fig.get_figheight()


def _eta_ticks(ax, etas) -> None:
    ax.set_xticks(etas)
    ax.set_xticklabels([f"{e:g}" for e in etas])
    ax.set_xlabel("pseudo-label error η", fontsize=12)
    ax.tick_params(labelsize=10.5)
    ax.grid(alpha=0.3, lw=0.6)


def plot_noise_sweep(records, path=None):
    """Students' test error and label corrections against the pseudo-label error η.

    Parameters
    ----------
    records : list of dict or pandas.DataFrame
        Run records of ``mke-theory simulate`` (task ``"simulate"``; other tasks are ignored), or
        ``stats.records_frame`` of them (then η is read from the variant ``"eta=0.3"`` and the
        title cannot name the generator).  The records must come from one sweep.
    path : str or Path, optional
        Where to save the figure: PDF if it ends in ``.pdf``, else PNG at 150 dpi; folders are made.

    Returns
    -------
    matplotlib.figure.Figure
        Two axes.  Left: test error (%) of each student, mean over seeds with its 95 % t-interval
        (``stats.summarize``) as a band, against the nominal η; the pseudo labels' own error on
        D_u (black); and the UM and MM bounds of Theorem 4.3 from the teacher rows (dotted, only
        at η where c > 3, drawn at most at 100 %; hollow markers where clipped), or a note where
        no bound exists or all are vacuous.  Right: pseudo labels on D_u each student corrected
        (bars up) and corrupted (bars down), mean count with 95 % interval.  One figure legend.
    """
    from matplotlib.figure import Figure

    frame, config = _sweep(data=records)
    etas = sorted(frame["eta"].unique())
    fig = Figure(figsize=(13.5, 5.6))
    ax, bx = fig.subplots(1, 2)
    handles, top, n_seeds = _error_curves(ax, frame)
    bound_lines, notes, any_clipped, top = _bound_curves(ax, frame, etas, top)
    handles += bound_lines
    _error_axes(ax, etas, notes, top)
    if any_clipped:
        handles.append(_clipped_marker())
    _correction_bars(bx, frame, etas)

    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=10.5, frameon=False)
    n_rows = (len(handles) + 3) // 4
    what = "Noise sweep"
    if config.get("regularizer"):
        what += f" (students regularised with {REG_LABELS.get(config['regularizer'], config['regularizer'])})"
    top = _suptitle(fig, _title(config, what) + f"; bands and whiskers: 95 % CI over {n_seeds} seeds", 13.5)
    fig.tight_layout(rect=(0, 0.045 * n_rows + 0.01, 1, top))
    save_figure(fig, path)
    return fig


def _error_curves(ax, frame) -> tuple[list, float, int]:
    """Panel (a)'s curves against η: each student's test error (%), mean over seeds with its t-interval as a
    band, and the pseudo labels' own error on D_u (black). Returns (legend handles, the highest value drawn,
    the most seeds of a cell)."""
    handles = []
    top, n_seeds = 0.0, 0
    for method, label, colour, dashed in SWEEP_STUDENTS:
        s = _cells(frame, "test_error", method)
        if s is None:
            continue
        low, high = np.clip(100 * s["ci_low"], 0, 100), np.clip(100 * s["ci_high"], 0, 100)  # error rates
        ax.fill_between(s["eta"], low, high, color=colour, alpha=0.10 if dashed else 0.22, lw=0)
        line, = ax.plot(s["eta"], 100 * s["mean"], color=colour, ls="--" if dashed else "-", lw=1.6 if dashed else 2.4,
                        marker="o", ms=4.5 if dashed else 6, mfc="white" if dashed else colour, label=label)
        handles.append(line)
        top, n_seeds = max(top, float(high.max())), max(n_seeds, int(s["n"].max()))
    t = _cells(frame, "pseudo_label_error", "teacher")
    if t is not None:
        line, = ax.plot(t["eta"], 100 * t["mean"], color="black", lw=1.8, marker="s", ms=5,
                        label="pseudo labels (teacher)")
        handles.append(line)
        top = max(top, float(100 * t["mean"].max()))
    return handles, top, n_seeds


def _bound_curves(ax, frame, etas, top: float) -> tuple[list, list[str], bool, float]:
    """Panel (a)'s bounds of Theorem 4.3 from the teacher rows, dotted per space on the full η grid, drawn at
    most at 100 % (hollow markers where clipped). Returns (legend handles, the notes on where a space has no
    bound or a vacuous one, whether any was clipped, ``top`` raised to the highest bound drawn)."""
    handles, notes, any_clipped = [], [], False
    teacher_etas = sorted(frame.loc[frame["method"] == "teacher", "eta"].unique())
    for space, _, colour in SPACES:
        name = space.upper()
        b = _cells(frame, f"{space}_bound", "teacher")
        outside, why = _outside_domain(frame, space, b, teacher_etas)
        if b is None:
            notes.append(f"{name} bound {why} for all η")
            continue
        value = 100 * b["mean"].to_numpy()
        drawn = np.minimum(value, 100.0)
        clipped = value >= 100.0
        # on the full η grid, so that a missing bound breaks the line instead of joining its neighbours
        grid = np.array(etas)
        y = np.full(grid.shape, np.nan)
        y[np.searchsorted(grid, b["eta"].to_numpy())] = drawn
        line, = ax.plot(grid, y, color=colour, ls=":", lw=2.0, marker="D", ms=5.5, label=f"{name} {BOUND_LABEL}")
        handles.append(line)
        if clipped.any():
            any_clipped = True
            ax.plot(b["eta"][clipped], drawn[clipped], ls="", marker="D", ms=8, mfc="white", mec=colour, mew=1.6)
        top = max(top, float(drawn.max()))
        note = _bound_note(name, b["eta"], clipped, outside, why)
        if note:
            notes.append(note)
    return handles, notes, any_clipped, top


def _outside_domain(frame, space: str, b, teacher_etas) -> tuple[list, str]:
    """(the teacher's η where ``space`` has no bound ``b``, why: outside the theorem's domain, "(c ≤ 3)" added
    when c ≤ 3 at every one of them)."""
    outside = [e for e in teacher_etas if b is None or e not in set(b["eta"])]
    c = _cells(frame, f"{space}_c", "teacher", finite_only=True)  # c = ∞ (no mistakes) always gives a bound
    small_c = c is not None and all(e in set(c["eta"]) and float(c.loc[c["eta"] == e, "mean"].iloc[0]) <= 3
                                    for e in outside)
    return outside, "outside the theorem's domain" + (" (c ≤ 3)" if small_c else "")


def _bound_note(name: str, etas, clipped: np.ndarray, outside: list, why: str) -> str:
    """The note on space ``name``'s bound: vacuous (≥ 100 %) at the ``clipped`` (bool, one per η of ``etas``),
    and ``why`` it is missing at the η ``outside``; "" when it is drawn everywhere below 100 %."""
    parts = []
    if clipped.all():
        parts.append("vacuous (≥ 100 %)" + (" wherever defined" if outside else " for all η"))
    elif clipped.any():
        parts.append("vacuous (≥ 100 %) for η = " + ", ".join(f"{e:g}" for e in etas[clipped]))
    if outside:
        parts.append(f"{why} for η = " + ", ".join(f"{e:g}" for e in outside))
    if parts:
        return f"{name} bound " + ";\n    ".join(parts)  # one line each, to fit the axes
    return ""


def _error_axes(ax, etas, notes: list[str], top: float) -> None:
    """Panel (a)'s limits, notes, labels and η ticks; ``top`` is the highest value drawn."""
    # the notes sit above the data: every curve is at most 100 % (bands and bounds are clipped)
    lines = sum(n.count("\n") + 1 for n in notes)
    room = 0.03 + 0.052 * lines if notes else 0.0
    ax.set_ylim(0, (min(100.0, top) * 1.04 + 1) / (1 - room))
    ax.set_yticks([v for v in ax.get_yticks() if 0 <= v <= 100])
    if notes:
        ax.text(0.015, 0.985, "\n".join(notes), transform=ax.transAxes, ha="left", va="top", fontsize=9.5,
                bbox=dict(boxstyle="round,pad=0.3", facecolor="white", edgecolor="0.6", alpha=0.9))
    ax.set_ylabel("test error (%)  /  pseudo-label error on $D_u$ (%)", fontsize=12)
    ax.set_title("(a) Error against pseudo-label error η", fontsize=12.5)
    _eta_ticks(ax, etas)


def _clipped_marker():
    """The legend entry of a bound drawn at 100 % (a hollow diamond)."""
    from matplotlib.lines import Line2D

    return Line2D([], [], ls="", marker="D", ms=8, mfc="white", mec="0.3", mew=1.6,
                  label="bound ≥ 100 %, drawn at 100 %")


def _correction_bars(bx, frame, etas) -> None:
    """Panel (b): pseudo labels on D_u each student corrected (bars up) and corrupted (bars down) per η, mean
    count with its interval as whiskers, students side by side."""
    gap = float(np.min(np.diff(etas))) if len(etas) > 1 else 0.1
    present = [m for m in SWEEP_STUDENTS if not frame[(frame["method"] == m[0])
                                                       & (frame["metric"] == "corrected")].empty]
    width = 0.8 * gap / max(1, len(present))
    for k, (method, _, colour, dashed) in enumerate(present):
        offset = (k - (len(present) - 1) / 2) * width
        for metric, sign in (("corrected", 1), ("corrupted", -1)):
            s = _cells(frame, metric, method)
            if s is None:
                continue
            mean = sign * s["mean"].to_numpy()
            err = np.vstack([s["mean"] - s["ci_low"], s["ci_high"] - s["mean"]])
            bx.bar(s["eta"] + offset, mean, width=width * 0.92, color=colour, alpha=0.45 if dashed else 1.0,
                   edgecolor=colour, hatch="//" if dashed else None, lw=0.8,
                   yerr=err, error_kw=dict(ecolor="0.25", lw=0.8, capsize=1.5))
    bx.axhline(0, color="black", lw=0.9)
    lim = max(abs(v) for v in bx.get_ylim())
    bx.set_ylim(-lim * 1.22, lim * 1.22)  # room for the two captions
    bx.yaxis.set_major_formatter(_abs_formatter())
    for y, va, text in ((0.98, "top", "↑ corrected: wrong pseudo label, student right"),
                        (0.02, "bottom", "↓ corrupted: right pseudo label, student wrong")):
        bx.text(0.02, y, text, transform=bx.transAxes, ha="left", va=va, fontsize=10,
                bbox=dict(boxstyle="round,pad=0.25", facecolor="white", edgecolor="none", alpha=0.85))
    bx.set_ylabel("pseudo labels on $D_u$ (mean count)", fontsize=12)
    bx.set_title("(b) Labels corrected and corrupted on $D_u$ (hatched: no reg.)", fontsize=12.5)
    _eta_ticks(bx, etas)
    bx.grid(axis="x", visible=False)


def _abs_formatter():
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda v, _: f"{abs(v):g}")


def plot_expansion(records, path=None):
    """Expansion c and separation μ of the UM and the MM space against the pseudo-label error η.

    Parameters
    ----------
    records : list of dict or pandas.DataFrame
        Run records of ``mke-theory simulate`` (the ``teacher`` rows carry ``um_c``, ``um_mu``, ...),
        or ``stats.records_frame`` of them; the records must come from one sweep.
    path : str or Path, optional
        Where to save the figure: PDF if it ends in ``.pdf``, else PNG at 150 dpi; folders are made.

    Returns
    -------
    matplotlib.figure.Figure
        Two axes.  Left: the certified lower bound on c over sets of mass ≤ ā (solid) and, where
        recorded, the smallest expansion a search for bad sets found (``*_c_search``, dashed: an upper
        bound), with the line c = 3 that Theorem 4.3 needs to exceed; an infinite c (every admissible set
        reaches its class) is a triangle at the top edge.  Right: μ, the separation of the true classes on
        the labeled validation data.  UM orange, MM blue.  One figure legend.
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.transforms import blended_transform_factory

    frame, config = _sweep(data=records)
    frame = frame[frame["method"] == "teacher"]
    if not frame["metric"].isin(["um_c", "mm_c", "um_mu", "mm_mu"]).any():
        raise MKEError("no teacher rows with um_c / mm_c / um_mu / mm_mu; these records hold no theory metrics")
    etas = sorted(frame["eta"].unique())
    gap = float(np.min(np.diff(etas))) if len(etas) > 1 else 0.1
    fig = Figure(figsize=(12.5, 5.2))
    cx, mx = fig.subplots(1, 2)
    top_edge = blended_transform_factory(cx.transData, cx.transAxes)
    handles, infinite, top = [], False, 3.0
    for k, (space, label, colour) in enumerate(SPACES):
        c = _cells(frame, f"{space}_c", "teacher", finite_only=True)
        if c is not None:
            line, = cx.plot(c["eta"], c["mean"], color=colour, lw=2.4, marker="o", ms=6,
                            label=f"{label}: c, certified lower bound")
            handles.append(line)
            top = max(top, float(c["mean"].max()))
        values = frame[frame["metric"] == f"{space}_c"]
        inf_etas = sorted(values.loc[np.isposinf(values["value"].to_numpy(dtype=float)), "eta"].unique())
        if inf_etas:
            infinite = True
            x = np.array(inf_etas) + (k - 0.5) * 0.12 * gap
            cx.plot(x, np.full(len(x), 0.965), ls="", marker="^", ms=10, color=colour, transform=top_edge,
                    clip_on=False)
        search = _cells(frame, f"{space}_c_search", "teacher", finite_only=True)
        if search is not None:
            line, = cx.plot(search["eta"], search["mean"], color=colour, lw=1.5, ls="--", marker="o", ms=4,
                            mfc="white", label=f"{label}: smallest c a search found")
            handles.append(line)
            top = max(top, float(search["mean"].max()))
        mu = _cells(frame, f"{space}_mu", "teacher", finite_only=True)
        if mu is not None:
            mx.plot(mu["eta"], mu["mean"], color=colour, lw=2.4, marker="o", ms=6)
    ref = cx.axhline(3.0, color="black", lw=1.2, ls=":", label="Thm 4.3 needs c > 3")
    cx.text(0.99, 3.0, "c = 3 ", transform=blended_transform_factory(cx.transAxes, cx.transData), ha="right",
            va="bottom", fontsize=10)
    handles.append(ref)
    if infinite:
        handles.append(Line2D([], [], ls="", marker="^", ms=10, color="0.45",
                              label="c = ∞: no pseudo-label mistakes (drawn at the top)"))
    cx.set_ylim(0, top * 1.2)
    cx.set_ylabel("expansion c", fontsize=12)
    cx.set_title("(a) Expansion c of the pseudo-labeller's mistake sets", fontsize=12.5)
    mx.set_ylim(0, max(1.0, mx.get_ylim()[1]))
    mx.set_ylabel("separation μ (≥ $R_B(G^*)$)", fontsize=12)
    mx.set_title("(b) Separation μ of the true classes", fontsize=12.5)
    for ax in (cx, mx):
        _eta_ticks(ax, etas)
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=10.5, frameon=False)
    n_rows = (len(handles) + 2) // 3
    top = _suptitle(fig, _title(config, "Expansion and separation") + " (estimated on $D_u$)", 13.5)
    fig.tight_layout(rect=(0, 0.05 * n_rows + 0.01, 1, top))
    save_figure(fig, path)
    return fig
