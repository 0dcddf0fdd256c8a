"""Shared statistical evaluation over run records (pandas, scipy, statsmodels; no torch).

``records_frame`` turns records into a tidy frame, one row per (task, method, variant, seed,
metric); ``summarize`` gives per-cell mean, standard deviation, interquartile mean, a t-based
and optionally a percentile bootstrap confidence interval. ``paired_comparison`` and
``compare_methods`` test methods against each other over seeds they share (mean difference with
its t interval, paired t-test, Wilcoxon signed-rank with its smallest attainable p, effect size
d_z, probability of improvement, Holm correction). The numbers only: tables of them (Markdown,
LaTeX, plain text, CSV) are written by ``mke_theory.results.tables``. ``records_table`` gives one row
per record with the config flattened (``train.lr``) and one column per metric.

An external teacher's records (``config["teacher"] == "external"``, the same predictions for every
seed) are one fixed value, not a sample over seeds: ``summarize`` gives it n = 1 and a Wilson
interval over its test samples (``wilson_interval``), and ``compare_methods`` tests a seeded method
against it by a one-sample test of the method's seeds against that value (``design``).

The few-run statistics follow rliable (Agarwal et al., "Deep Reinforcement Learning at the Edge
of the Statistical Precipice", NeurIPS 2021): percentile bootstrap intervals (stratified by task
when ``strata`` are given), the interquartile mean (IQM) and the probability of improvement.
With few runs the percentile bootstrap covers far less than its nominal level (for normal data
about 50 % at 2 runs, 75 % at 3, 84 % at 5, 90 % at 10 for a nominal 95 %; docs/statistics.md),
so the t interval is the default everywhere and ``BOOTSTRAP_FEW_RUNS`` marks where a bootstrap
interval is flagged.
"""

from __future__ import annotations

import numbers
import warnings
import zlib

import numpy as np
import pandas as pd
from scipy import stats as _st
from statsmodels.stats.multitest import multipletests

from mke_theory.core.checks import RandomState, check_choice, check_random_state, check_range
from mke_theory.core.errors import MKEError
from mke_theory.core.records import config_hash

KEYS = ["task", "method", "variant"]
FRAME_COLUMNS = KEYS + ["seed", "metric", "value"]
PROVENANCE_COLUMNS = KEYS + ["seed", "split", "metric", "value", "config_hash"]
STATISTICS = ("mean", "iqm")
FIXED_COLUMNS = ["fixed", "n_test"]  # records_frame and summarize add them where an external teacher is present
TESTS = {"t": "paired t-test over seeds", "wilcoxon": "Wilcoxon signed-rank test over seeds"}
ONE_SAMPLE_TESTS = {"t": "one-sample t-test of the seeds against the fixed value",
                    "wilcoxon": "one-sample Wilcoxon signed-rank test of the seeds against the fixed value"}
DESIGNS = ("paired", "one-sample", "fixed")  # how a comparison pairs its two sides (compare_methods' design)
SUMMARY_COLUMNS = KEYS + ["n", "mean", "std", "ci_low", "ci_high"]
PAIR_COLUMNS = ["n", "mean", "baseline_mean", "mean_diff", "diff_ci_low", "diff_ci_high", "t", "p_t", "p_wilcoxon",
                "p_wilcoxon_min", "d_z", "prob_improvement_paired", "prob_improvement_all_pairs", "design", "note"]
COMPARISON_COLUMNS = (KEYS + ["baseline", "baseline_variant"] + PAIR_COLUMNS[:-1]
                      + ["test", "p", "p_min", "p_holm", "alpha", "significant", "note"])
HOLM_NAN_POLICIES = ("omit", "count")
BOOTSTRAP_FEW_RUNS = 10  # fewer runs per cell: a percentile bootstrap interval under-covers (docs/statistics.md)
_BOOTSTRAP_ELEMENTS = 1 << 20  # resampled values held in memory at once


# ---- records ----------------------------------------------------------------------------------


def is_fixed(record: dict) -> bool:
    """Whether a record is one fixed value rather than a seeded run: an external teacher's row
    (``config["teacher"] == "external"``), scored from the same predictions for every seed."""
    config = record.get("config")
    return record.get("method") == "teacher" and isinstance(config, dict) and config.get("teacher") == "external"


def _n_test(record: dict, metric: str) -> float:
    """The test samples ``metric`` of a fixed record is a share of (``n_test`` for the metrics listed in its
    ``proportion_metrics``), NaN where it is not a share of samples or the record does not say."""
    n = record.get("n_test")
    if not is_fixed(record) or not n or metric not in record.get("proportion_metrics", ()):
        return np.nan
    return float(n)


def records_frame(records: list[dict], *, provenance: bool = False) -> pd.DataFrame:
    """Tidy frame of run records, one row per (record, metric).

    Parameters
    ----------
    records : list of dict
        Run records (``mke_theory.core.records``): each holds ``task``, ``method``, ``seed``,
        ``metrics`` and optionally ``variant``, ``split_id`` and ``config_hash``.
    provenance : bool, default False
        Also carry ``split`` (the record's ``split_id``, None where absent) and ``config_hash``.
        Off by default so the frame keeps its original six columns.

    Returns
    -------
    pandas.DataFrame
        Columns task, method, variant, seed, metric, value; with ``provenance`` task, method,
        variant, seed, split, metric, value, config_hash. Only where some record is fixed
        (``is_fixed``: an external teacher) two more columns follow: ``fixed`` (bool) and
        ``n_test`` (the test samples a fixed record's metric is a share of, NaN otherwise), which
        ``summarize`` and ``compare_methods`` read. One row per record × metric either way (see
        ``records_table`` for one row per record).
    """
    fixed = any(is_fixed(r) for r in records)

    def extra(r, m) -> dict:
        return dict(fixed=is_fixed(r), n_test=_n_test(r, m)) if fixed else {}

    if provenance:
        rows = [dict(task=r["task"], method=r["method"], variant=r.get("variant", ""), seed=r["seed"],
                     split=r.get("split_id"), metric=m, value=float(v), config_hash=r.get("config_hash"),
                     **extra(r, m))
                for r in records for m, v in r["metrics"].items()]
        return pd.DataFrame(rows, columns=PROVENANCE_COLUMNS + (FIXED_COLUMNS if fixed else []))
    rows = [dict(task=r["task"], method=r["method"], variant=r.get("variant", ""), seed=r["seed"],
                 metric=m, value=float(v), **extra(r, m)) for r in records for m, v in r["metrics"].items()]
    return pd.DataFrame(rows, columns=FRAME_COLUMNS + (FIXED_COLUMNS if fixed else []))


def check_one_config(records: list[dict], where: str = "the records") -> None:
    """Raise ``MKEError`` when one (task, method, variant) holds runs of more than one config.

    Such runs are different experiments (another learning rate, other data: the config holds the split id), and
    a table row over them would be a mean of unlike things with n counting both. The sentence names the cell,
    the config hashes (they end the records' file names) and the first config fields that differ.
    """
    cells: dict[tuple, dict[str, dict]] = {}
    for r in records:
        key = (r["task"], r["method"], r.get("variant", ""))
        cells.setdefault(key, {}).setdefault(r.get("config_hash") or config_hash(r["config"]), r["config"])
    for key, configs in cells.items():
        if len(configs) < 2:
            continue
        hashes = sorted(configs)  # the values below are listed in the order of their hashes
        flat = [_flatten(configs[h]) for h in hashes]
        differ = sorted(k for k in set().union(*flat) if len({repr(f.get(k)) for f in flat}) > 1)
        shown = "; ".join(f"{k}: {' vs '.join(str(f.get(k)) for f in flat)}" for k in differ[:3])
        more = f" and {len(differ) - 3} more" if len(differ) > 3 else "" if differ else "their config hashes"
        cell = "/".join(v for v in key if v)
        raise MKEError(f"{where} hold {len(configs)} configs of {cell} (config_hash {', '.join(hashes)}), "
                       f"which differ in {shown}{more}: one table row is one config, so put each config's records "
                       "in a folder of its own (or tell the runs apart with mke-exp run --name)")


def missing_runs(frame: pd.DataFrame, metric: str, expected=()) -> list[str]:
    """What a table of ``metric`` over ``frame`` lacks, one phrase each, for its caption.

    ``expected`` names the rows the table should have (a method, or a (method, variant) pair); each one without
    values is "no records of ...". Within a task, a cell whose seeds are a strict subset of another cell's lacks
    the difference ("um_student lacks seed(s) 14"): its mean is over fewer runs and its paired tests over the
    shared seeds only. Cells with unrelated seed sets (TwoMoon's one teacher, seed 39) are no gap.
    """
    sub = frame[frame["metric"] == metric]
    present = set(zip(sub["method"], sub["variant"]))
    notes = []
    for item in expected:
        method, variant = (item, None) if isinstance(item, str) else item
        if not any(m == method and (variant is None or v == variant) for m, v in present):
            notes.append(f"no records of {_label(method, variant or '')}")
    for _, rows in sub.groupby("task", sort=False):
        seeds = {key: set(g["seed"]) for key, g in rows.groupby(["method", "variant"], sort=False)}
        for key, own in seeds.items():
            fuller = [other for other in seeds.values() if own < other]
            if fuller:
                lacking = sorted(max(fuller, key=len) - own)
                notes.append(f"{_label(*key)} lacks seed(s) {', '.join(map(str, lacking))}")
    return notes


RECORD_COLUMNS = KEYS + ["seed", "split_id", "config_hash"]  # the first columns of records_table
RECORD_TAIL = ["best_epoch", "wall_time_s", "world_size", "ensemble_size", "n_test", "hardware", "version",
               "git_revision", "schema_version"]  # scalar record fields, after the metrics and the config


def _flatten(config: dict, prefix: str = "") -> dict:
    """``{"train": {"lr": 0.001}}`` → ``{"train.lr": 0.001}``; lists stay one value."""
    out = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def records_table(records: list[dict]) -> pd.DataFrame:
    """One row per run record: its keys, one column per metric, the config flattened.

    Parameters
    ----------
    records : list of dict
        Run records (``mke_theory.core.records.read_records``).

    Returns
    -------
    pandas.DataFrame
        One row per record, in the order given. Columns: task, method, variant, seed, split_id,
        config_hash; then one column per metric, named as in the records (``test_accuracy``, NaN
        where a record lacks it); then the config flattened with dots (``config["train"]["lr"]``
        → ``train.lr``, ``data.split``, ``split_id`` only once); then best_epoch, wall_time_s,
        world_size, ensemble_size, n_test, hardware, version, git_revision, schema_version where
        any record has them. A config entry whose flattened name is taken already keeps the prefix
        ``config.``: ``config.task``, the task that trained the record, beside ``task``, the name
        tables group by (they differ for ``mke-exp run TASK --name NAME``). History is left out.

    Example
    -------
    >>> table = records_table(read_records("runs/mfeat"))                      # doctest: +SKIP
    >>> table.groupby(["method", "train.lr"])["test_accuracy"].mean()           # doctest: +SKIP
    """
    rows, metric_names, config_names, tail = [], {}, {}, {}
    for r in records:
        row = dict(task=r["task"], method=r["method"], variant=r.get("variant", ""), seed=r["seed"],
                   split_id=r.get("split_id"), config_hash=r.get("config_hash"))
        for name, value in r.get("metrics", {}).items():
            metric_names.setdefault(name, None)
            row[name] = value
        for name, value in _flatten(r.get("config") or {}).items():
            if name == "split_id" and value == row["split_id"]:
                continue
            name = f"config.{name}" if name in row or name in RECORD_TAIL else name
            config_names.setdefault(name, None)
            row[name] = value
        for name in RECORD_TAIL:
            if name in r and not isinstance(r[name], (dict, list)):
                tail.setdefault(name, None)
                row[name] = r[name]
        rows.append(row)
    columns = RECORD_COLUMNS + list(metric_names) + [c for c in config_names if c not in metric_names]
    columns += [c for c in RECORD_TAIL if c in tail]
    return pd.DataFrame(rows, columns=columns)


# ---- one sample -------------------------------------------------------------------------------


def _check_values(values, name: str = "values") -> np.ndarray:
    x = np.asarray(values, dtype=float).ravel()
    if x.size == 0:
        raise MKEError(f"{name} must hold at least one number")
    if not np.all(np.isfinite(x)):
        raise MKEError(f"{name} must be finite (no NaN or infinity)")
    return x


def t_interval(values, confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided Student-t confidence interval of the mean; (mean, mean) for a single value."""
    check_range("confidence", confidence, 0.0, 1.0, low_inclusive=False, high_inclusive=False)
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise MKEError("values must hold at least one number")
    mean = float(x.mean())
    if x.size == 1:
        return mean, mean
    half = float(_st.t.ppf(0.5 + confidence / 2, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size))
    return mean - half, mean + half


def wilson_interval(proportion: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided Wilson score interval of a proportion of ``n`` independent samples (Wilson 1927).

    With z the ``(1 + confidence) / 2`` normal quantile and p̂ = ``proportion``: centre
    (p̂ + z²/2n) / (1 + z²/n), half-width z / (1 + z²/n) · sqrt(p̂(1 − p̂)/n + z²/4n²)
    (statsmodels ``proportion_confint(..., method="wilson")``, with count = p̂·n). Unlike the
    normal approximation it stays inside [0, 1] and is not of zero width at p̂ = 0 or 1. Used for a
    fixed value, an external teacher's accuracy over its n test samples.

    Parameters
    ----------
    proportion : float
        The observed share, in [0, 1].
    n : int
        The number of samples it is a share of, at least 1.
    confidence : float, default 0.95
        Coverage in (0, 1).

    Returns
    -------
    (low, high) : tuple of float
    """
    from statsmodels.stats.proportion import proportion_confint

    check_range("confidence", confidence, 0.0, 1.0, low_inclusive=False, high_inclusive=False)
    check_range("proportion", proportion, 0.0, 1.0)
    check_range("n", n, 1)
    low, high = proportion_confint(float(proportion) * float(n), float(n), alpha=1 - confidence, method="wilson")
    return float(low), float(high)


def interquartile_mean(values) -> float:
    """Interquartile mean (IQM): the mean of the middle 50 % of the values.

    Computed as ``scipy.stats.trim_mean(values, 0.25)`` over all values (rliable's ``aggregate_iqm``):
    ``int(0.25 * n)`` values are cut from each end of the sorted sample, so for n not divisible by
    4 slightly more than half of the values are kept. Examples: 1..8 → mean(3, 4, 5, 6) = 4.5;
    1..5 → mean(2, 3, 4) = 3; fewer than 4 values → the plain mean.

    Parameters
    ----------
    values : array_like
        Finite numbers, any shape (flattened).

    Returns
    -------
    float
    """
    return float(_st.trim_mean(_check_values(values), 0.25))


def _iqm_rows(samples: np.ndarray, axis: int) -> np.ndarray:
    return _st.trim_mean(samples, 0.25, axis=axis)


_STATISTIC_FUNCTIONS = {"mean": np.mean, "iqm": _iqm_rows}


def bootstrap_interval(values, confidence: float = 0.95, n_resamples: int = 2000, statistic: str = "mean",
                       random_state: RandomState = None, strata=None) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean or the interquartile mean.

    Each resample draws ``n`` values with replacement; with ``strata`` it draws, within every
    stratum (e.g. every task), as many values as that stratum holds, so each resample keeps the
    strata sizes (rliable's stratified bootstrap). The statistic is then taken over the whole
    resample, and the interval is the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2``
    quantiles of the ``n_resamples`` statistics (Efron & Tibshirani 1993, Ch. 13).

    Parameters
    ----------
    values : array_like, shape (n,)
        Finite numbers, e.g. one score per run.
    confidence : float, default 0.95
        Coverage in (0, 1).
    n_resamples : int, default 2000
        Bootstrap resamples, at least 1.
    statistic : {"mean", "iqm"}, default "mean"
        Mean or interquartile mean (``interquartile_mean``) of each resample.
    random_state : None, int or numpy.random.Generator
        The only source of randomness; an int gives the same interval every call.
    strata : array_like, shape (n,), optional
        One group id per value; resampling happens within each group.

    Returns
    -------
    (low, high) : tuple of float
        ``(x, x)`` when all values are equal (in particular for a single value).
    """
    check_range("confidence", confidence, 0.0, 1.0, low_inclusive=False, high_inclusive=False)
    check_range("n_resamples", n_resamples, 1, integer=True)
    check_choice("statistic", statistic, STATISTICS)
    x = _check_values(values)
    rng = check_random_state(random_state)
    if strata is None:
        groups = [np.arange(x.size)]
    else:
        ids = np.asarray(strata)
        if ids.ndim != 1 or ids.size != x.size:
            raise MKEError(f"strata must hold one group id per value ({x.size}), got shape {ids.shape}")
        _, inverse = np.unique(ids, return_inverse=True)  # groups in sorted id order: deterministic
        groups = [np.flatnonzero(inverse == k) for k in range(int(inverse.max()) + 1)]
    stat = _STATISTIC_FUNCTIONS[statistic]
    estimates = np.empty(int(n_resamples))
    chunk = max(1, _BOOTSTRAP_ELEMENTS // x.size)
    for start in range(0, int(n_resamples), chunk):
        m = min(chunk, int(n_resamples) - start)
        index = np.concatenate([g[rng.integers(0, g.size, size=(m, g.size))] for g in groups], axis=1)  # (m, n)
        estimates[start:start + m] = stat(x[index], axis=1)
    low, high = np.quantile(estimates, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high)


# ---- per-cell summaries ------------------------------------------------------------------------


def _metric_rows(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    sub = frame[frame["metric"] == metric]
    if sub.empty:
        known = ", ".join(sorted(map(str, frame["metric"].unique())))
        raise MKEError(f"no values of metric {metric!r}; found: {known}")
    return sub


def _pair_keys(frame: pd.DataFrame) -> list[str]:
    """Columns identifying one run across methods: task and seed, and split where the frame has it."""
    return ["task", "seed"] + (["split"] if "split" in frame.columns else [])


def _canonical(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows in a fixed order (seed, split, value), whatever order the records came in."""
    rows = rows.copy()
    if "split" in rows.columns:
        rows["split"] = rows["split"].astype(object).where(rows["split"].notna(), "").astype(str)
    order = [c for c in ("task", "seed", "split", "value") if c in rows.columns]
    return rows.sort_values(order, kind="mergesort")


def _group_seed(base: int, key) -> np.random.Generator:
    """A generator for one cell that depends on the cell, not on where the cell sits in the frame."""
    return np.random.default_rng([base, zlib.crc32(repr(tuple(map(str, key))).encode())])


def _fixed_value(rows: pd.DataFrame, metric: str = "") -> float | None:
    """The one value of a fixed cell (its rows are an external teacher's, one per seed, all equal), None for a
    cell of seeded runs. A cell mixing both, or fixed rows of different values, is an error."""
    if "fixed" not in rows.columns or not rows["fixed"].any():
        return None
    cell = "/".join(str(v) for v in rows[KEYS].iloc[0] if v)
    if not rows["fixed"].all():
        raise MKEError(f"{cell} mixes records of an external teacher with trained ones; keep one kind per task "
                       "(e.g. another --name or another folder)")
    values = rows["value"].to_numpy(dtype=float)
    if np.ptp(values) > 1e-12 * max(1.0, float(np.abs(values).max())):
        raise MKEError(f"{cell} holds different {metric or 'values'} from external teachers of different "
                       "outputs; keep one (e.g. filter the frame by config_hash)")
    return float(values[0])


def summarize(frame: pd.DataFrame, metric: str, confidence: float = 0.95, bootstrap: bool = False,
              random_state: RandomState = None, n_resamples: int = 2000) -> pd.DataFrame:
    """Per (task, method, variant): n, mean, std, t-interval, IQM and optionally a bootstrap interval.

    Parameters
    ----------
    frame : pandas.DataFrame
        Output of ``records_frame``.
    metric : str
        The metric to summarise; an unknown name raises ``ValueError`` listing the known ones.
    confidence : float, default 0.95
        Coverage of both intervals, in (0, 1).
    bootstrap : bool, default False
        Also give a percentile bootstrap interval of the mean (``boot_low``, ``boot_high``), one
        stratum per cell (a cell's runs are one group, so nothing is stratified). With fewer than
        ``BOOTSTRAP_FEW_RUNS`` runs its real coverage is well below ``confidence``
        (docs/statistics.md); the t interval stays the one to report.
    random_state : None, int or numpy.random.Generator
        Seeds the bootstrap; each cell gets its own stream derived from this and the cell's keys,
        so a cell's interval does not depend on the other cells or on the row order.
    n_resamples : int, default 2000
        Bootstrap resamples per cell.

    Returns
    -------
    pandas.DataFrame
        Columns task, method, variant, n, mean, std (ddof=1, NaN for one run), ci_low, ci_high,
        iqm, and with ``bootstrap`` boot_low, boot_high; one row per cell in order of first
        appearance. Where the frame has the ``fixed`` column (``records_frame`` of records with an
        external teacher) two more columns, ``fixed`` and ``n_test``: a fixed cell is one value, not
        a mean over seeds (n = 1, std NaN, iqm the value), its ``ci_low``/``ci_high`` the Wilson
        interval (``wilson_interval``) over its ``n_test`` test samples, NaN for a metric that is no
        share of test samples (macro-F1, mAP, mIoU: the record holds no per-sample predictions to
        resample), and NaN bootstrap bounds. ``attrs["confidence"]`` holds ``confidence``; with ``bootstrap``
        ``attrs["bootstrap"]`` describes the interval computed: ``dict(method="percentile",
        strata=1, n_resamples=..., random_state=...)`` (``random_state`` when it was an int, else
        None). Values within a cell are sorted by seed first, so the numbers do not depend on the
        order of the records.
    """
    check_range("confidence", confidence, 0.0, 1.0, low_inclusive=False, high_inclusive=False)
    sub = _metric_rows(frame, metric)
    base = int(check_random_state(random_state).integers(2**63)) if bootstrap else 0
    rows, has_fixed = [], "fixed" in sub.columns
    for key, g in sub.groupby(KEYS, sort=False):
        value = _fixed_value(g, metric)
        if value is not None:  # one fixed value (an external teacher): its interval is over test samples
            n_test = float(g["n_test"].iloc[0])
            lo, hi = wilson_interval(value, int(n_test), confidence) if np.isfinite(n_test) else (np.nan, np.nan)
            row = dict(zip(KEYS, key), n=1, mean=value, std=np.nan, ci_low=lo, ci_high=hi, iqm=value)
            if bootstrap:
                row["boot_low"], row["boot_high"] = np.nan, np.nan  # no runs to resample
            rows.append(dict(row, fixed=True, n_test=n_test))
            continue
        x = _canonical(g)["value"].to_numpy(dtype=float)
        lo, hi = t_interval(x, confidence)
        row = dict(zip(KEYS, key), n=len(x), mean=float(x.mean()),
                   std=float(x.std(ddof=1)) if len(x) > 1 else np.nan, ci_low=lo, ci_high=hi,
                   iqm=interquartile_mean(x))
        if bootstrap:
            row["boot_low"], row["boot_high"] = bootstrap_interval(
                x, confidence, n_resamples, random_state=_group_seed(base, key))
        rows.append(dict(row, fixed=False, n_test=np.nan) if has_fixed else row)
    columns = SUMMARY_COLUMNS + ["iqm"] + (["boot_low", "boot_high"] if bootstrap else [])
    columns += FIXED_COLUMNS if has_fixed else []
    out = pd.DataFrame(rows, columns=columns)
    out.attrs["confidence"] = confidence
    if bootstrap:
        seed = random_state if isinstance(random_state, numbers.Integral) else None
        out.attrs["bootstrap"] = dict(method="percentile", strata=1, n_resamples=int(n_resamples),
                                      random_state=None if seed is None else int(seed))
    return out


# ---- paired comparisons ------------------------------------------------------------------------


def _method_variant(name: str, value) -> tuple[str, str]:
    if isinstance(value, str):
        return value, ""
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, str) for v in value):
        return value[0], value[1]
    raise MKEError(f"{name} must be a method name or a (method, variant) pair, got {value!r}")


def _label(method: str, variant: str) -> str:
    return f"{method} ({variant})" if variant else method


def _side(sub: pd.DataFrame, method: str, variant: str, keys: list[str]) -> pd.DataFrame:
    rows = _canonical(sub[(sub["method"] == method) & (sub["variant"] == variant)])
    duplicated = rows.duplicated(keys)
    if duplicated.any():
        where = rows.loc[duplicated, keys].iloc[0].to_dict()
        raise MKEError(f"method {_label(method, variant)!r} has several values for {where}; keep one run per seed "
                         "(e.g. filter the frame by config_hash)")
    return rows


def _prob_greater(a: np.ndarray, b: np.ndarray) -> float:
    """P(a > b) + P(a = b) / 2 over all pairs of one value of a and one of b (Mann-Whitney U / (n_a n_b))."""
    return float(np.mean(a[:, None] > b[None, :]) + 0.5 * np.mean(a[:, None] == b[None, :]))


def _wilcoxon_p(x: np.ndarray, y: np.ndarray | None = None) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(_st.wilcoxon(x, y).pvalue)


def _sides(rows_a: pd.DataFrame, rows_b: pd.DataFrame, metric: str = "") -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """(rows_a, rows_b, design) ready for ``_paired_stats``: a fixed side (``_fixed_value``) stands at its value
    beside every run of the other side, which makes the paired tests one-sample tests of that side's seeds
    against the value ("one-sample"); two fixed sides become one pair ("fixed": nothing to test); two seeded
    sides pair over shared runs ("paired")."""
    value_a, value_b = _fixed_value(rows_a, metric), _fixed_value(rows_b, metric)
    if value_a is not None and value_b is not None:
        keys = {c: rows_a.iloc[0][c] for c in ("task", "seed", "split") if c in rows_a.columns and c in rows_b.columns}
        return rows_a.iloc[:1], rows_b.iloc[:1].assign(**keys), "fixed"
    if value_b is not None:
        return rows_a, rows_a.assign(value=value_b), "one-sample"
    if value_a is not None:
        return rows_b.assign(value=value_a), rows_b, "one-sample"
    return rows_a, rows_b, "paired"


def _paired_stats(rows_a: pd.DataFrame, rows_b: pd.DataFrame, keys: list[str], confidence: float = 0.95,
                  metric: str = "") -> dict:
    """The paired statistics of a − b over shared runs (over a's or b's runs against the other's fixed value,
    ``_sides``); ``_nonzero`` (internal) counts the nonzero differences."""
    rows_a, rows_b, design = _sides(rows_a, rows_b, metric)
    merged = rows_a[keys + ["value"]].merge(rows_b[keys + ["value"]], on=keys, suffixes=("_a", "_b"))
    merged = merged.sort_values(keys, kind="mergesort")
    a, b = merged["value_a"].to_numpy(dtype=float), merged["value_b"].to_numpy(dtype=float)
    d = a - b
    n = int(d.size)
    notes = ["both are fixed values: no test"] if design == "fixed" else []
    out = dict(n=n, mean=float(a.mean()) if n else np.nan, baseline_mean=float(b.mean()) if n else np.nan,
               mean_diff=float(d.mean()) if n else np.nan, diff_ci_low=np.nan, diff_ci_high=np.nan, t=np.nan,
               p_t=np.nan, p_wilcoxon=np.nan, p_wilcoxon_min=np.nan, d_z=np.nan,
               prob_improvement_paired=float(np.mean((d > 0) + 0.5 * (d == 0))) if n else np.nan,
               _nonzero=int(np.count_nonzero(d)))
    constant = n >= 2 and np.ptp(d) <= 1e-12 * max(1.0, float(np.abs(d).max()))
    if n >= 2:  # zero width when all differences are equal (the note says so)
        out["diff_ci_low"], out["diff_ci_high"] = t_interval(d, confidence)
    if n < 2 and design == "one-sample":
        notes.append(f"{n} run(s) against the fixed value: no test")
    elif n < 2 and design == "paired":
        notes.append(f"{n} shared seed(s): no test")
    elif constant:
        notes.append("all differences are equal: t-test and d_z undefined")
    else:
        res = _st.ttest_rel(a, b)
        out["t"], out["p_t"] = float(res.statistic), float(res.pvalue)
        out["d_z"] = float(d.mean() / d.std(ddof=1))
    if n >= 2:
        if np.all(d == 0):
            notes.append("all differences are zero: Wilcoxon test undefined")
        else:
            out["p_wilcoxon"] = _wilcoxon_p(a, b)
            # the same magnitudes all of one sign: the most extreme outcome, so the smallest p the test can give
            # here (exact test without ties or zeros: 2 / 2^k for k nonzero differences)
            out["p_wilcoxon_min"] = _wilcoxon_p(np.abs(d))
    # all-pairs version over every run of each side, per task, averaged over tasks (rliable)
    per_task = []
    for task, runs_a in rows_a.groupby("task", sort=True):
        runs_b = rows_b[rows_b["task"] == task]
        if not runs_b.empty:
            per_task.append(_prob_greater(runs_a["value"].to_numpy(dtype=float), runs_b["value"].to_numpy(dtype=float)))
    out["prob_improvement_all_pairs"] = float(np.mean(per_task)) if per_task else np.nan
    out["design"] = design
    out["note"] = "; ".join(notes)
    return out


def paired_comparison(frame: pd.DataFrame, metric: str, method_a: str, method_b: str, task: str | None = None,
                      variant_a: str = "", variant_b: str = "", confidence: float = 0.95) -> dict:
    """Compare two methods over the seeds they share: paired tests, effect size, probability of improvement.

    Runs are matched on task and seed (and on split when the frame has a ``split`` column, see
    ``records_frame(..., provenance=True)``); with ``task=None`` the pairs of every task are
    pooled. Differences are ``a − b``.

    Parameters
    ----------
    frame : pandas.DataFrame
        Output of ``records_frame``.
    metric : str
        The metric compared.
    method_a, method_b : str
        The two methods; ``variant_a`` / ``variant_b`` select their variants ("" = main method).
    task : str, optional
        Restrict to one task.
    confidence : float, default 0.95
        Coverage of the t interval of the mean difference, in (0, 1).

    Returns
    -------
    dict
        ``n`` (shared seeds), ``mean_a``, ``mean_b`` and ``mean_diff`` over the shared seeds;
        ``diff_ci_low``, ``diff_ci_high``: the Student-t interval (``t_interval``) of the mean of
        the paired differences (NaN for fewer than 2 pairs, zero width when all differences are
        equal); ``t`` and ``p_t`` of the paired t-test (``scipy.stats.ttest_rel``); ``p_wilcoxon`` of
        the Wilcoxon signed-rank test (``scipy.stats.wilcoxon``, zero differences dropped) and
        ``p_wilcoxon_min``, the smallest p that test can give for these pairs (the same magnitudes
        all of one sign; 2 / 2^k for k nonzero differences without ties, so 0.0625 with 5 seeds);
        ``d_z`` = mean / sd (ddof=1) of the differences
        (Cohen's d for paired samples); ``prob_improvement_paired`` = fraction of shared-seed pairs
        with a > b, ties counting 1/2; ``prob_improvement_all_pairs`` = P(X_a > X_b) + P(X_a = X_b)/2
        over all combinations of a run of a and a run of b in the same task (Mann-Whitney U /
        (n_a n_b), all runs of each, averaged over tasks as rliable does); ``design``: "paired",
        or "one-sample" when one side is a fixed value (an external teacher, ``is_fixed``): then
        every run of the other side is set against that value, whatever its seed, so ``n`` counts
        the seeded side's runs and the t-test is ``scipy.stats.ttest_1samp(seeds, value)`` (the
        Wilcoxon test likewise on seeds − value), or "fixed" when both are (nothing to test);
        ``note`` says why a value is NaN (fewer than 2 pairs, all differences equal or all zero).
        Also ``method_a``, ``variant_a``, ``method_b``, ``variant_b``, ``task``.

    Raises
    ------
    ValueError
        Unknown metric, task or method, several runs of one method for one seed, or no shared seed.
    """
    sub = _select_task(_metric_rows(frame, metric), task)
    keys = _pair_keys(sub)
    rows = []
    for name, method, variant in (("method_a", method_a, variant_a), ("method_b", method_b, variant_b)):
        if not isinstance(method, str) or not isinstance(variant, str):
            raise MKEError(f"{name} and its variant must be strings, got {method!r}, {variant!r}")
        side = _side(sub, method, variant, keys)
        if side.empty:
            known = ", ".join(sorted({_label(m, v) for m, v in zip(sub["method"], sub["variant"])}))
            raise MKEError(f"{name}: no values of {metric!r} for {_label(method, variant)!r}; found: {known}")
        rows.append(side)
    check_range("confidence", confidence, 0.0, 1.0, low_inclusive=False, high_inclusive=False)
    result = _paired_stats(rows[0], rows[1], keys, confidence, metric)
    if result["n"] == 0:
        raise MKEError(f"{_label(method_a, variant_a)!r} and {_label(method_b, variant_b)!r} share no seed "
                         f"({'/'.join(keys)}); a paired comparison needs runs with the same seeds")
    return dict(method_a=method_a, variant_a=variant_a, method_b=method_b, variant_b=variant_b, task=task,
                n=result["n"], mean_a=result["mean"], mean_b=result["baseline_mean"],
                **{k: result[k] for k in PAIR_COLUMNS[3:]})


def _select_task(sub: pd.DataFrame, task: str | None) -> pd.DataFrame:
    if task is None:
        return sub
    out = sub[sub["task"] == task]
    if out.empty:
        raise MKEError(f"task {task!r} has no values; found: {', '.join(sorted(map(str, sub['task'].unique())))}")
    return out


def holm_adjust(p_values, alpha: float = 0.05, nan_policy: str = "omit") -> tuple[np.ndarray, np.ndarray]:
    """Holm's step-down adjustment of p values (Holm 1979), via statsmodels ``multipletests``.

    The i-th smallest of m p values becomes ``max_{j <= i} min(1, (m - j + 1) p_(j))``; a
    hypothesis is rejected when its adjusted p value is at most ``alpha`` (this controls the
    family-wise error rate at ``alpha``). Results come back in the order of ``p_values``. NaN p
    values (hypotheses that could not be tested) are left NaN and not rejected; with
    ``nan_policy="omit"`` they do not count towards m, with ``"count"`` they do (as p = 1, which
    is never rejected and only makes the others' correction stricter).

    Parameters
    ----------
    p_values : array_like, shape (m,)
    alpha : float, default 0.05
        Family-wise error rate, in (0, 1).
    nan_policy : {"omit", "count"}, default "omit"
        Whether NaN p values are members of the family (m) or not.

    Returns
    -------
    adjusted : numpy.ndarray, shape (m,)
    reject : numpy.ndarray of bool, shape (m,)
    """
    check_range("alpha", alpha, 0.0, 1.0, low_inclusive=False, high_inclusive=False)
    check_choice("nan_policy", nan_policy, HOLM_NAN_POLICIES)
    p = np.asarray(p_values, dtype=float).ravel()
    if np.any((p < 0) | (p > 1)):
        raise MKEError("p_values must lie in [0, 1] (or be NaN)")
    adjusted, reject = np.full(p.shape, np.nan), np.zeros(p.shape, dtype=bool)
    finite = np.isfinite(p)
    if finite.any():
        members = finite if nan_policy == "omit" else np.ones(p.shape, dtype=bool)
        rej, adj, _, _ = multipletests(np.where(finite, p, 1.0)[members], alpha=alpha, method="holm")
        full_rej, full_adj = np.zeros(p.shape, dtype=bool), np.full(p.shape, np.nan)
        full_rej[members], full_adj[members] = rej, adj
        reject[finite], adjusted[finite] = full_rej[finite], full_adj[finite]
    return adjusted, reject


def compare_methods(frame: pd.DataFrame, metric: str, baseline, task: str | None = None, test: str = "t",
                    alpha: float = 0.05, confidence: float = 0.95) -> pd.DataFrame:
    """Every other (method, variant) against a baseline, per task, with Holm-corrected p values.

    Parameters
    ----------
    frame : pandas.DataFrame
        Output of ``records_frame``.
    metric : str
        The metric compared.
    baseline : str or (str, str)
        The baseline method, or a (method, variant) pair.
    task : str, optional
        Restrict to one task; otherwise every task where the baseline ran.
    test : {"t", "wilcoxon"}, default "t"
        Which p value (``p_t`` or ``p_wilcoxon`` of ``paired_comparison``) is corrected and decides
        ``significant``.
    alpha : float, default 0.05
        Family-wise error rate of the Holm correction.
    confidence : float, default 0.95
        Coverage of the t interval of each mean difference (``diff_ci_low``, ``diff_ci_high``).

    Returns
    -------
    pandas.DataFrame
        One row per (task, method, variant) other than the baseline, sorted by them: the columns of
        ``paired_comparison`` (``mean`` and ``baseline_mean`` for the two sides, ``mean_diff`` =
        method − baseline with its t interval, ``d_z``), ``test``, ``p`` (the chosen test's p
        value), ``p_min`` (the smallest p that test can give for the row's pairs: 0 for the t-test,
        ``p_wilcoxon_min`` for Wilcoxon, NaN where untested), ``p_holm`` (Holm-adjusted over the
        family, see below) and ``significant`` (``p_holm <= alpha``). ``attrs["confidence"]`` holds
        ``confidence``. ``design`` says how the two sides were paired: "paired" over shared seeds,
        or "one-sample" where one side is a fixed value (an external teacher's, ``is_fixed``): the
        seeded side's runs against that value (``paired_comparison``).

        The Holm family is fixed by the design, not by the outcomes: every row with at least 2
        shared seeds. A member whose test is undefined by its values (all differences equal for the
        t-test, all zero for either test) is not tested (``p``, ``p_holm`` NaN, never significant)
        but still counts towards Holm's m, as p = 1 (``holm_adjust(..., nan_policy="count")``), so
        a degenerate outcome never loosens the correction of the others. A row with fewer than 2
        shared seeds is not tested and not a member. ``note`` says, per row, why a statistic is
        NaN, that the row is not tested and whether it counts in m, and when the chosen test
        cannot reach ``alpha`` at all: Wilcoxon with
        ``p_min > alpha`` (e.g. 5 seeds, p ≥ 0.0625), or a family where even the smallest
        attainable p, times m, exceeds ``alpha`` (Holm's smallest adjusted p is m times the
        smallest p). Note pieces are joined by "; ". A method without a seed shared with the
        baseline gets n = 0, NaN statistics and a note rather than an error.
    """
    check_choice("test", test, tuple(TESTS))
    check_range("alpha", alpha, 0.0, 1.0, low_inclusive=False, high_inclusive=False)
    check_range("confidence", confidence, 0.0, 1.0, low_inclusive=False, high_inclusive=False)
    base_method, base_variant = _method_variant("baseline", baseline)
    sub = _select_task(_metric_rows(frame, metric), task)
    keys = _pair_keys(sub)
    rows, nonzero = _against_baseline(sub, metric, base_method, base_variant, keys, confidence)
    out = pd.DataFrame(rows, columns=KEYS + ["baseline", "baseline_variant"] + PAIR_COLUMNS)
    out["test"] = test
    p, p_min, members = _holm_family(out, test, alpha)
    out["note"] = _comparison_notes(out["note"].tolist(), p, p_min, nonzero, members, alpha)
    out = out[COMPARISON_COLUMNS].reset_index(drop=True)
    out.attrs["confidence"] = confidence
    return out


def _against_baseline(sub: pd.DataFrame, metric: str, base_method: str, base_variant: str, keys: list[str],
                      confidence: float) -> tuple[list[dict], list[int]]:
    """``_paired_stats`` of every other (method, variant) against the baseline, per task where the baseline ran.

    Returns (one dict per comparison: task, method, variant, baseline, baseline_variant and the
    ``PAIR_COLUMNS``, sorted by task then method and variant; the number of nonzero differences of each).
    """
    base_all = sub[(sub["method"] == base_method) & (sub["variant"] == base_variant)]
    if base_all.empty:
        known = ", ".join(sorted({_label(m, v) for m, v in zip(sub["method"], sub["variant"])}))
        raise MKEError(f"baseline {_label(base_method, base_variant)!r} has no values of {metric!r}; found: {known}")
    rows, nonzero = [], []
    for t in sorted(base_all["task"].unique()):
        in_task = sub[sub["task"] == t]
        base_rows = _side(in_task, base_method, base_variant, keys)
        others = sorted({(m, v) for m, v in zip(in_task["method"], in_task["variant"])} - {(base_method, base_variant)})
        for method, variant in others:
            result = _paired_stats(_side(in_task, method, variant, keys), base_rows, keys, confidence, metric)
            nonzero.append(result.pop("_nonzero"))
            if result["n"] == 0:
                result["note"] = f"no seed shared with {_label(base_method, base_variant)}"
            rows.append(dict(task=t, method=method, variant=variant, baseline=base_method,
                             baseline_variant=base_variant, **result))
    return rows, nonzero


def _holm_family(out: pd.DataFrame, test: str, alpha: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Add ``p``, ``p_min``, ``p_holm``, ``significant`` and ``alpha`` to the comparisons ``out`` (in place).

    Returns (p, p_min, members), each (n_rows,): the chosen test's p, the smallest p it can give (NaN where
    untested), and the Holm family (rows with at least 2 shared seeds).
    """
    p = out["p_t" if test == "t" else "p_wilcoxon"].to_numpy(dtype=float)
    tested = np.isfinite(p)
    p_min = np.where(tested, 0.0, np.nan) if test == "t" else np.where(tested, out["p_wilcoxon_min"], np.nan)
    out["p"], out["p_min"] = p, p_min
    members = out["n"].to_numpy() >= 2  # the family: every comparison with pairs to test, whatever their values
    adjusted, significant = np.full(len(out), np.nan), np.zeros(len(out), dtype=bool)
    adjusted[members], significant[members] = holm_adjust(p[members], alpha, nan_policy="count")
    out["p_holm"], out["significant"], out["alpha"] = adjusted, significant, alpha
    return p, p_min, members


def _comparison_notes(notes: list[str], p: np.ndarray, p_min: np.ndarray, nonzero: list[int], members: np.ndarray,
                      alpha: float) -> list[str]:
    """Each row's note, plus: not tested (in or out of Holm's m), or the test cannot reach ``alpha``."""
    m = int(members.sum())
    floor = float(np.min(p_min[np.isfinite(p_min)])) if np.isfinite(p_min).any() else np.nan
    out = []
    for i, note in enumerate(notes):
        pieces = [note] if note else []
        if not members[i]:
            pieces.append(f"not tested: fewer than 2 shared seeds, not in the Holm family (m = {m})")
        elif not np.isfinite(p[i]):
            pieces.append(f"not tested: counted in the Holm family (m = {m}) as p = 1")
        elif p_min[i] > alpha:
            pieces.append(f"Wilcoxon cannot reach p ≤ {alpha:g} with {nonzero[i]} nonzero differences "
                          f"(smallest two-sided p = {p_min[i]:.4g})")
        elif m * floor > alpha:
            pieces.append(f"Holm over m = {m} cannot reach p ≤ {alpha:g} "
                          f"(every adjusted p ≥ {m} × {floor:.4g} = {min(1.0, m * floor):.4g})")
        out.append("; ".join(pieces))
    return out
