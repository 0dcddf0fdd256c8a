"""Validation benchmark of ``mke-theory check``: does its verdict before training match the gain measured after?

What is measured
----------------
For every case the library's own pipeline (``mke_experiments.protocol.run``, the code path of ``mke-exp run``)
trains teacher, um_student and mm_student over seeds 0-4; records are cached under ``--runs`` and resumed.

- the 30 ordered pairs (α, β) of the six mfeat views (``mke-exp run mfeat --set data.alpha=A --set data.beta=B``);
- three synthetic negative controls, each an ``arrays`` bundle (``mke-exp run arrays --data BUNDLE.npz``):
  ``ctrl-indep`` β independent of the label, ``ctrl-copy`` β = α + N(0, 0.5²), ``ctrl-redundant`` β carries the
  class only where α is far from the Bayes boundary (pure noise near it); and one harmful case, ``ctrl-misaligned``:
  D_u's β is recorded out of sync (it shows the next class), val and test are in sync; 4 Gaussian classes in 10 dims,
  100 labeled / 200 val / 600 test / 1100 unlabeled, fixed data seed;
- ``twomoon``: the paper's two moons (α = x, β = y) as a bundle, 30 labeled / 100 val / 200 test / 270 unlabeled.

Measured gain = paired mean over seeds of test accuracy (mm_student − teacher) with a paired 95 % t interval;
"significant" = the interval excludes 0 (likewise mm_student − um_student). Each run writes a check bundle
(``OUT/check/<task>__check__seed<S>__<hash>.npz``); ``mke_theory.diagnose.check_bundle`` is run on the seed-0
bundle (what a user runs once) and on all five (mean predicted gain). Baselines: the former check
(``_old_check.py``, commit 9533c90; it needs D_u's true labels; its sentence maps to "helps" or "no help", and
"no help" counts as predicting a negative gain), scored for ρ by −Δμ = μ_UM − μ_MM and −Δbound; and the
trivial rule "β always helps".

Limits
------
One data split per case (the split seed is fixed; only initialisation seeds vary), so "significant" is about
initialisation noise, not about new data. The 30 mfeat pairs share views (each view is α in 5 pairs and β in 5),
so they are not 30 independent tests: ρ over them is optimistic about its own precision. Five seeds give
wide intervals; many pairs are not significant and drop out of the sign agreement.

    python benchmarks/bench_check.py [--pairs all|zer-fou,...] [--seeds 0,1,2,3,4] [--epochs E]
        [--runs runs/bench_check] [--json OUT.json] [--table docs/check_benchmark.md] [--rebuild]
        [--n-val 500 --no-controls --runs runs/bench_check_nval500 --table docs/check_benchmark_nval500.md]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.stats import rankdata

from mke_experiments.tasks.mfeat import VIEWS
from mke_theory.results.stats import t_interval

HERE = Path(__file__).resolve().parent
METHODS = ("teacher", "um_student", "mm_student")
PAIRS = [f"{a}-{b}" for a in VIEWS for b in VIEWS if a != b]
NEGATIVE = ("ctrl-indep", "ctrl-copy", "ctrl-redundant")
HARMFUL = ("ctrl-misaligned",)  # a case where MKE should lose to its teacher: the "hurts" verdict's test
CONTROLS = NEGATIVE + HARMFUL + ("twomoon",)
DEFAULT_PAIR = "zer-fou"
SIZES = dict(labeled=100, val=200, test=600, unlabeled=1100)  # like mfeat
K, DIM, SEPARATION = 4, 10, 2.5  # Gaussian controls: class means sep apart, unit noise
GAP = 2.0  # ctrl-redundant: "far from the boundary" = Bayes log-odds of the top class over the next > GAP
DATA_SEED = 0


# ---- statistics ---------------------------------------------------------------------------------------------
def spearman(x, y) -> float:
    """Spearman ρ (average ranks for ties) over the pairs where both are finite; NaN if either is constant."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3:
        return float("nan")
    rx, ry = rankdata(x[ok]), rankdata(y[ok])
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def paired_ci(a, b, confidence: float = 0.95) -> dict:
    """Mean of a − b (paired by position) with its t interval; significant = the interval excludes 0."""
    d = np.asarray(a, float) - np.asarray(b, float)
    low, high = t_interval(d, confidence)
    return dict(mean=float(d.mean()), low=low, high=high, significant=bool(low > 0 or high < 0), n=int(d.size))


def sign_agreement(verdicts, gains) -> dict:
    """Over the cases with a significant gain: share whose verdict has the gain's sign ("helps" for a positive,
    "hurts" for a negative gain; "unclear" disagrees). coverage = share of non-unclear verdicts over all cases.

    Two scores that also count the cases without a significant gain: ``precision_helps`` = share of "helps"
    verdicts whose gain is significantly positive; ``three_way`` = share of all cases whose verdict equals the
    measured class (significant +: helps, significant −: hurts, otherwise unclear)."""
    scored = [(v, g) for v, g in zip(verdicts, gains) if v is not None]
    sig = [(v, g) for v, g in scored if g["significant"]]
    agree = sum((v == "helps") if g["mean"] > 0 else (v == "hurts") for v, g in sig)
    truth = lambda g: "unclear" if not g["significant"] else "helps" if g["mean"] > 0 else "hurts"  # noqa: E731
    helps = [g for v, g in scored if v == "helps"]
    nan = float("nan")
    return dict(agreement=agree / len(sig) if sig else nan, agree=agree, n_significant=len(sig),
                coverage=float(np.mean([v != "unclear" for v, _ in scored])) if scored else nan,
                precision_helps=float(np.mean([truth(g) == "helps" for g in helps])) if helps else nan,
                three_way=float(np.mean([v == truth(g) for v, g in scored])) if scored else nan)


def old_label(sentence: str) -> str:
    """The former check's sentence as "helps" (β expected to help / looks helpful / the direction MKE needs)
    or "hurts" (every other sentence: no sign of help, or a guarantee in both spaces)."""
    helpful = ("expected to help", "looks helpful", "the direction MKE needs")
    return "helps" if any(s in sentence for s in helpful) else "hurts"


# ---- the control bundles ------------------------------------------------------------------------------------
def _alpha(rng, n: int, means: np.ndarray):
    y = rng.permutation(np.arange(n) % len(means))
    return y, means[y] + rng.standard_normal((n, means.shape[1]))


def bayes_gap(alpha: np.ndarray, means: np.ndarray) -> np.ndarray:
    """Log-odds of the most over the second most likely class under the true model (unit-variance Gaussians)."""
    score = -0.5 * ((alpha[:, None, :] - means[None]) ** 2).sum(-1)
    top = np.sort(score, axis=1)
    return top[:, -1] - top[:, -2]


def gaussian_control(kind: str, seed: int = DATA_SEED) -> dict:
    """One control as an ``arrays`` bundle (D_l, val, test, D_u with its true labels)."""
    rng = np.random.default_rng([seed, (NEGATIVE + HARMFUL).index(kind)])
    means = SEPARATION / np.sqrt(2) * np.eye(K, DIM)  # pairwise distance SEPARATION
    beta_means = 4.0 / np.sqrt(2) * np.eye(K, DIM)

    def beta_of(y, a, part):
        noise = rng.standard_normal(a.shape)
        if kind == "ctrl-misaligned":  # D_u's β recorded out of sync: it shows the next class; val and test in sync
            return beta_means[(y + 1) % K if part == "unlabeled" else y] + noise
        if kind == "ctrl-indep":
            return noise
        if kind == "ctrl-copy":
            return a + 0.5 * noise
        far = bayes_gap(a, means) > GAP
        return np.where(far[:, None], beta_means[y], 0.0) + noise

    out = {}
    for part, n in SIZES.items():
        y, a = _alpha(rng, n, means)
        keys = dict(labeled=("labeled_alpha", None, "labels"), unlabeled=("unlabeled_alpha", "unlabeled_beta",
                    "unlabeled_labels"), val=("val_alpha", "val_beta", "val_labels"),
                    test=("test_alpha", "test_beta", "test_labels"))[part]
        out[keys[0]], out[keys[2]] = a.astype(np.float32), y
        if keys[1]:
            out[keys[1]] = beta_of(y, a, part).astype(np.float32)
    return out


def twomoon_bundle(seed: int = DATA_SEED) -> dict:
    """The paper's two moons (noise 0.1), α = x, β = y: 30 labeled, 100 val, 200 test, 270 unlabeled."""
    from sklearn.datasets import make_moons

    x, y = make_moons(n_samples=600, noise=0.1, random_state=42 + seed)
    order = np.random.default_rng(seed).permutation(len(y))
    x, y = x[order].astype(np.float32), y[order]
    cuts = np.cumsum([30, 100, 200])
    parts = dict(zip(("labeled", "val", "test", "unlabeled"), np.split(np.arange(len(y)), cuts)))
    out = dict(labeled_alpha=x[parts["labeled"], :1], labels=y[parts["labeled"]])
    for part, prefix in (("val", "val"), ("test", "test"), ("unlabeled", "unlabeled")):
        i = parts[part]
        out[f"{prefix}_alpha"], out[f"{prefix}_beta"] = x[i, :1], x[i, 1:]
        out["unlabeled_labels" if part == "unlabeled" else f"{prefix}_labels"] = y[i]
    return out


def control_bundle(name: str) -> dict:
    return twomoon_bundle() if name == "twomoon" else gaussian_control(name)


# ---- training and the checks --------------------------------------------------------------------------------
def measure(case: str, runs: Path, seeds, epochs, force: bool, n_val: int | None = None) -> dict:
    """Train (or resume) the three methods of one case; returns its folder and the per-seed test accuracies."""
    from mke_experiments import protocol

    folder = runs / (f"mfeat-{case}" if case in PAIRS else case)
    if case in PAIRS:
        alpha, beta = case.split("-")
        task, data, overrides = "mfeat", None, (f"data.alpha={alpha}", f"data.beta={beta}")
        if n_val is not None:  # a larger labeled validation set (taken from D_u: the split's sizes add up)
            overrides += (f"data.n_val={n_val}",)
    else:
        data = runs / "bundles" / f"{case}.npz"
        data.parent.mkdir(parents=True, exist_ok=True)
        np.savez(data, **control_bundle(case))
        task, overrides = "arrays", ("train.epochs=300",) if case == "twomoon" and epochs is None else ()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        records = protocol.run(task, data, out=folder, seeds=tuple(seeds), methods=METHODS, epochs=epochs,
                               device="cpu", overrides=overrides, force=force)
    acc = {m: {r["seed"]: r["metrics"]["test_accuracy"] for r in records if r["method"] == m} for m in METHODS}
    hashes = {r["seed"]: r["config_hash"] for r in records if r["method"] == "teacher"}
    mm, t, um = ([acc[m][s] for s in seeds] for m in ("mm_student", "teacher", "um_student"))
    return dict(folder=str(folder), accuracy=acc, gain=paired_ci(mm, t), gain_over_um=paired_ci(mm, um),
                hashes=hashes)


def check_path(folder: Path, seed: int, config_hash: str | None) -> Path | None:
    """The check bundle a run of ``seed`` wrote: the one of the run's config hash, else the newest."""
    found = sorted((folder / "check").glob(f"*__check__seed{seed}__*.npz"), key=lambda p: p.stat().st_mtime)
    exact = [p for p in found if config_hash and p.stem.endswith(config_hash)]
    return (exact or found or [None])[-1]


def new_check(arrays: dict, source: str):
    try:
        from mke_theory.diagnose import check_bundle
    except ImportError:
        return None
    t0 = time.perf_counter()
    out = check_bundle(arrays, source=source)
    out = dict(out, wall_s=time.perf_counter() - t0)
    return json.loads(json.dumps(out, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v)))


def old_check(arrays: dict):
    sys.path.insert(0, str(HERE))
    import _old_check

    if "unlabeled_labels" not in arrays:
        return None
    pseudo = arrays["pseudo_labels"] if "pseudo_labels" in arrays else np.argmax(arrays["teacher_probs"], axis=1)
    r = _old_check.check(arrays["unlabeled_alpha"], arrays["unlabeled_beta"], pseudo, arrays["unlabeled_labels"])
    um, mm = r["um"], r["mm"]
    bound = um["bound"] - mm["bound"] if um["bound"] is not None and mm["bound"] is not None else None
    return dict(sentence=r["verdict"], verdict=old_label(r["verdict"]), minus_dmu=um["mu"] - mm["mu"],
                minus_dbound=bound, um=dict(c=um["c"], mu=um["mu"], bound=um["bound"]),
                mm=dict(c=mm["c"], mu=mm["mu"], bound=mm["bound"]))


def checks(case: dict, seeds) -> dict:
    """New and old check on the seed-0 bundle, and the new check's mean predicted gain over all seeds' bundles."""
    from mke_theory.core.bundle import load_npz

    folder, out = Path(case["folder"]), dict(new=None, old=None, bundle=None, mean_estimate=None)
    paths = {s: check_path(folder, s, case["hashes"].get(s)) for s in seeds}
    first = paths[seeds[0]]
    if first is None:
        return out
    arrays = load_npz(first)
    out.update(bundle=str(first), new=new_check(arrays, str(first)), old=old_check(arrays))
    estimates = [out["new"]["predicted_gain"]["estimate"]] if out["new"] else []
    for s in seeds[1:]:
        if out["new"] and paths[s] is not None:
            estimates.append(new_check(load_npz(paths[s]), str(paths[s]))["predicted_gain"]["estimate"])
    out["mean_estimate"] = float(np.mean(estimates)) if estimates else None
    out["n_bundles"] = sum(p is not None for p in paths.values())
    return out


# ---- the summary --------------------------------------------------------------------------------------------
def summary(results: dict, pairs, timing) -> dict:
    mfeat = [results[p] for p in pairs]
    every = list(results.values())
    get = lambda rs, f: [f(r) if r["check"]["bundle"] else None for r in rs]  # noqa: E731
    new_v = lambda rs: get(rs, lambda r: r["check"]["new"]["verdict"] if r["check"]["new"] else None)  # noqa: E731
    old_v = lambda rs: get(rs, lambda r: r["check"]["old"]["verdict"] if r["check"]["old"] else None)  # noqa: E731
    gains = lambda rs: [r["gain"] for r in rs]  # noqa: E731
    num = lambda v: np.nan if v is None else v  # noqa: E731
    measured = [r["gain"]["mean"] for r in mfeat]
    new_est = get(mfeat, lambda r: r["check"]["new"]["predicted_gain"]["estimate"] if r["check"]["new"] else None)
    rho = dict(
        new_seed0=spearman([num(v) for v in new_est], measured),
        new_mean5=spearman([num(r["check"]["mean_estimate"]) for r in mfeat], measured),
        new_over_um=spearman([num(r["check"]["new"]["predicted_gain_over_um"]["estimate"]) if r["check"]["new"]
                              else np.nan for r in mfeat], [r["gain_over_um"]["mean"] for r in mfeat]),
        old_minus_dmu=spearman([num(r["check"]["old"]["minus_dmu"]) if r["check"]["old"] else np.nan
                                for r in mfeat], measured),
        old_minus_dbound=spearman([num(r["check"]["old"]["minus_dbound"]) if r["check"]["old"] else np.nan
                                   for r in mfeat], measured),
        trivial=float("nan"))
    agreement = {}
    for name, rs in (("mfeat", mfeat), ("combined", every)):
        agreement[name] = dict(new=sign_agreement(new_v(rs), gains(rs)), old=sign_agreement(old_v(rs), gains(rs)),
                               trivial=sign_agreement(["helps"] * len(rs), gains(rs)))
    negatives = {n: results[n]["check"]["new"]["verdict"] if results.get(n) and results[n]["check"]["new"] else None
                 for n in NEGATIVE if n in results}
    combined = agreement["combined"]
    targets = {
        "ρ ≥ 0.85 on the mfeat pairs (seed-0 check)": rho["new_seed0"] >= 0.85,
        "sign agreement new > trivial (combined set)": combined["new"]["agreement"] > combined["trivial"]["agreement"],
    }
    if negatives:  # not with --no-controls
        targets["every negative control unclear or hurts"] = all(v in ("unclear", "hurts") for v in negatives.values())
    harmful = {n: results[n]["check"]["new"]["verdict"] if results[n]["check"]["new"] else None
               for n in HARMFUL if n in results}
    if harmful:
        targets["the harmful control (ctrl-misaligned) says hurts"] = all(v == "hurts" for v in harmful.values())
    if timing is not None:  # measured on the default split only
        targets["one check ≤ 5 s (zer→fou, seed 0)"] = timing <= 5.0
    return dict(rho=rho, agreement=agreement, negatives=negatives, check_seconds=timing, targets=targets)


def _pts(g: dict) -> str:
    star = "*" if g["significant"] else ""
    return f"{100 * g['mean']:+.1f} [{100 * g['low']:+.1f}, {100 * g['high']:+.1f}]{star}"


def _pred(c: dict) -> str:
    if not c["new"]:
        return "—"
    p = c["new"]["predicted_gain"]
    return f"{100 * p['estimate']:+.1f} [{100 * p['low']:+.1f}, {100 * p['high']:+.1f}]"


def rows(results: dict) -> list[str]:
    lines = ["| case | measured MM − teacher (pts, 95 % CI) | MM − UM | predicted (seed 0) | mean of 5 | verdict "
             "| old verdict | old −Δμ |", "|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        c = r["check"]
        mean5 = "—" if c["mean_estimate"] is None else f"{100 * c['mean_estimate']:+.1f}"
        verdict = c["new"]["verdict"] if c["new"] else ("no check bundle" if not c["bundle"] else "—")
        old = (c["old"]["verdict"], f"{c['old']['minus_dmu']:+.3f}") if c["old"] else ("—", "—")
        lines.append(f"| {name.replace('-', '→') if name in PAIRS else name} | {_pts(r['gain'])} | "
                     f"{_pts(r['gain_over_um'])} | {_pred(c)} | {mean5} | {verdict} | {old[0]} | {old[1]} |")
    return lines


def report(s: dict) -> list[str]:
    f = lambda v: "—" if v is None or v != v else f"{v:.3f}"  # noqa: E731
    rho = s["rho"]
    out = ["| | new | old | trivial (β always helps) |", "|---|---|---|---|",
           f"| Spearman ρ, 30 mfeat pairs (seed-0 check) | {f(rho['new_seed0'])} | {f(rho['old_minus_dmu'])} (−Δμ), "
           f"{f(rho['old_minus_dbound'])} (−Δbound) | — |",
           f"| Spearman ρ, mean of 5 seeds' checks | {f(rho['new_mean5'])} | | |",
           f"| Spearman ρ, gain over UM student | {f(rho['new_over_um'])} | | |"]
    for name in ("mfeat", "combined"):
        a = s["agreement"][name]
        cell = lambda x: f"{f(x['agreement'])} ({x['agree']}/{x['n_significant']}), coverage {f(x['coverage'])}"  # noqa: E731
        out.append(f"| sign agreement, significant gains ({name}) | {cell(a['new'])} | {cell(a['old'])} | "
                   f"{cell(a['trivial'])} |")
        for key, what in (("precision_helps", "share of 'helps' with a significant gain"),
                          ("three_way", "verdict = measured class (+ / n.s. / −)")):
            out.append(f"| {what} ({name}) | " + " | ".join(f(a[m][key]) for m in ("new", "old", "trivial")) + " |")
    t = s["check_seconds"]
    out.append(f"| one check, zer→fou seed 0 (s) | {'—' if t is None else f'{t:.2f}'} | | |")
    out += [""] + [f"- {'PASS' if ok else 'FAIL'}: {name}" for name, ok in s["targets"].items()]
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", default="all", help="all, or comma-separated A-B pairs of mfeat views")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--epochs", type=int, default=None, help="override train.epochs of every case")
    parser.add_argument("--runs", type=Path, default=Path("runs/bench_check"))
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--table", type=Path, default=Path("docs/check_benchmark.md"))
    parser.add_argument("--no-controls", action="store_true", help="only the mfeat pairs")
    parser.add_argument("--rebuild", action="store_true", help="retrain every run (force)")
    parser.add_argument("--n-val", type=int, default=None,
                        help="mfeat's validation size (default 200; taken from D_u); e.g. 500 with --no-controls")
    args = parser.parse_args(argv)
    pairs = PAIRS if args.pairs == "all" else [p.strip() for p in args.pairs.split(",")]
    bad = [p for p in pairs if p not in PAIRS]
    if bad:
        parser.error(f"unknown pair(s) {', '.join(bad)}; pairs are A-B of {', '.join(VIEWS)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    cases = pairs + ([] if args.no_controls else list(CONTROLS))
    results, t0 = {}, time.perf_counter()
    for i, case in enumerate(cases, 1):
        results[case] = measure(case, args.runs, seeds, args.epochs, args.rebuild, args.n_val)
        results[case]["check"] = checks(results[case], seeds)
        print(f"[{i}/{len(cases)}] {case}: gain {_pts(results[case]['gain'])} pts, "
              f"predicted {_pred(results[case]['check'])} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    timing = None
    if DEFAULT_PAIR in results and results[DEFAULT_PAIR]["check"]["new"] and args.n_val is None:
        from mke_theory.core.bundle import load_npz

        arrays = load_npz(results[DEFAULT_PAIR]["check"]["bundle"])
        timing = float(np.median([new_check(arrays, "timing")["wall_s"] for _ in range(3)]))
    s = summary(results, pairs, timing)
    command = "python benchmarks/bench_check.py " + " ".join(argv if argv is not None else sys.argv[1:])
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}"
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = ["# Validation of `mke-theory check`", "", f"`{command.strip()}` — {date}, {machine}; seeds "
             f"{args.seeds}. Gains in accuracy points; * = paired 95 % t interval excludes 0. "
             "See the docstring of benchmarks/bench_check.py for what is measured and its limits.", "",
             "## Summary", ""] + report(s) + ["", "## Per case", ""] + rows(results)
    print("\n".join(lines))
    if args.table:
        args.table.parent.mkdir(parents=True, exist_ok=True)
        args.table.write_text("\n".join(lines) + "\n")
    if args.json:
        args.json.write_text(json.dumps(dict(command=command, date=date, machine=machine, summary=s,
                                             results=results), indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
