"""Shared statistical evaluation over run records (pandas, scipy; no torch).

``records_frame`` turns records into a tidy frame, one row per (task, method, variant, seed,
metric); ``summarize`` gives per-cell mean, standard deviation and a t-based confidence interval.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as _st

from mke_theory._validation import check_range

KEYS = ["task", "method", "variant"]


def records_frame(records: list[dict]) -> pd.DataFrame:
    """Tidy frame with columns task, method, variant, seed, metric, value (one row per metric)."""
    rows = [dict(task=r["task"], method=r["method"], variant=r.get("variant", ""), seed=r["seed"],
                 metric=m, value=float(v)) for r in records for m, v in r["metrics"].items()]
    return pd.DataFrame(rows, columns=KEYS + ["seed", "metric", "value"])


def t_interval(values, confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided Student-t confidence interval of the mean; (mean, mean) for a single value."""
    check_range("confidence", confidence, 0.0, 1.0, low_inclusive=False, high_inclusive=False)
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("values must hold at least one number")
    mean = float(x.mean())
    if x.size == 1:
        return mean, mean
    half = float(_st.t.ppf(0.5 + confidence / 2, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size))
    return mean - half, mean + half


def summarize(frame: pd.DataFrame, metric: str, confidence: float = 0.95) -> pd.DataFrame:
    """Per (task, method, variant): n, mean, std (ddof=1), ci_low, ci_high of ``metric``."""
    sub = frame[frame["metric"] == metric]
    if sub.empty:
        raise ValueError(f"no values of metric {metric!r}; found: {', '.join(sorted(frame['metric'].unique()))}")
    rows = []
    for key, g in sub.groupby(KEYS, sort=False):
        lo, hi = t_interval(g["value"].to_numpy(), confidence)
        rows.append(dict(zip(KEYS, key), n=len(g), mean=g["value"].mean(),
                         std=g["value"].std(ddof=1) if len(g) > 1 else np.nan, ci_low=lo, ci_high=hi))
    return pd.DataFrame(rows)
