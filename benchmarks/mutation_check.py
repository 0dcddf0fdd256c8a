"""Plant semantic mutations in a copy of the repository, one at a time, and see whether the tests notice.

    python benchmarks/mutation_check.py [--only NAME[,NAME]] [--list] [--jobs N] [--keep]
                                        [--timeout-scale F] [--no-baseline] [--python PATH]

Not run in CI: a benchmark of the test suite itself (see docs/mutation_check.md). Every mutant in
``MUTANTS`` is a small exact text replacement ``(file, old, new)`` that models one plausible bug,
together with the tests most likely to catch it. For each mutant the script

1. copies a snapshot of the working tree (``git ls-files`` plus untracked files that git does not
   ignore; the repository itself is never written to) into a fresh temporary folder,
2. replaces ``old`` by ``new`` in that copy; ``old`` must occur exactly once, otherwise the mutant
   is reported as BROKEN (a harness error: the list has rotted because the code moved),
3. runs ``python -m pytest -x -q`` on the mutant's tests inside the copy, with ``PYTHONPATH`` set to
   the copy, so the copy's packages shadow the editable install of the repository, under a
   per-mutant timeout.

Before the mutants, the script checks that a child process really imports ``mke_theory`` and
``mke_experiments`` from the copy, runs a canary mutant (``import mke_theory`` raises) that must be
killed, and runs every selected test once on the unmutated copy (the baseline): tests that fail
there are deselected from the mutant runs and reported, since they could not tell a mutant apart.

Output: one line per mutant, ``killed`` (and the first failing test), ``SURVIVED``, ``TIMEOUT``
(not counted as killed: raise the timeout), ``BROKEN`` (the mutation could not be applied) or
``ERROR`` (pytest could not run the selection: a test id or ``-k`` that matches nothing), with
seconds, and as the last line ``mutation score: K/N killed``; BROKEN and ERROR are harness errors.
Exit status 0 when every mutant was killed, 1 when some survived or timed out, 2 on a harness error.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = "target: ≤ 20 min for the whole list on a 2-core machine (--jobs 1)"

# ---- the mutants ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mutant:
    """One planted bug: replace ``old`` (exactly one occurrence) by ``new`` in ``file``.

    ``tests`` are pytest arguments relative to the repository root (files or node ids), ``k`` an
    optional ``-k`` expression, ``timeout`` the seconds the mutant's run may take.
    """

    name: str
    file: str
    old: str
    new: str
    description: str
    tests: tuple[str, ...]
    k: str | None = None
    timeout: float = 120.0


OBJ = "mke_theory/objective.py"
ENS = "mke_theory/toy/ensemble.py"
SEEDS = "mke_experiments/protocol/seeds.py"
STATS = "mke_theory/results/stats.py"
T_OBJ = "tests/theory/test_objective.py"
T_ENS = "tests/theory/test_ensemble.py"
T_STATS = "tests/theory/test_stats.py"
T_PAIRED = "tests/theory/test_stats_paired.py"
T_LEAK = "tests/experiments/test_leakage.py"
T_INTERNALS = "tests/theory/test_check_internals.py"
T_EXP = "tests/experiments/test_experiments.py"
T_BATCH = "tests/experiments/test_batched_seeds.py"
T_STREAM = "tests/experiments/test_streaming.py"
LOOP = "mke_experiments/train/loop.py"
STACKED = "mke_experiments/models/stacked.py"
FAST_TASKS = "mfeat or arrays"  # -k: the leakage canaries of the tasks whose smoke data train in seconds

CANARY = Mutant(
    "canary-import-raises", "mke_theory/__init__.py",
    '__version__ = "0.1.0"\n',
    'raise ImportError("mutation canary: the mutated copy of mke_theory was imported")\n__version__ = "0.1.0"\n',
    "import mke_theory raises: must be killed, else the tests do not import the copy",
    ("tests/theory/test_errors.py",), timeout=90)

MUTANTS: tuple[Mutant, ...] = (
    # ---- the eight an audit found uncaught ----
    Mutant("selection-scores-test-split", SEEDS,
           "            inputs = self.val[:modalities]\n"
           "            return (Selection(inputs, self.primary_score, metrics.needs_scores(self.task.primary),\n"
           '                              name=f"val_{self.task.primary}"), self.val_labels)',
           '            inputs = (self.t["test_alpha"], self.t["test_beta"])[:modalities]\n'
           "            return (Selection(inputs, self.primary_score, metrics.needs_scores(self.task.primary),\n"
           '                              name=f"val_{self.task.primary}"), torch.as_tensor(self.split.test_labels))',
           "model selection scores the test split instead of the validation data (SeedRun.selection)",
           (T_LEAK,), k=FAST_TASKS, timeout=180),
    Mutant("teacher-trains-on-du-true-labels", SEEDS,
           'return (self.t["labeled_alpha"],), _label_targets(self.split), {}',
           'return (*(((self.t["labeled_alpha"],), _label_targets(self.split)) if self.split.unlabeled_labels is None '
           'else ((self.t["unlabeled_alpha"],), torch.as_tensor(self.split.unlabeled_labels))), {})',
           "the teacher trains on α of D_u with its true labels whenever they exist (SeedRun.data)",
           (T_LEAK,), k=FAST_TASKS, timeout=180),
    Mutant("student-loss-ignores-gamma", OBJ,  # one composition now: mke_loss and the reduce form both go through it
           "return loss if gamma == 0 else loss + gamma * l_reg(clean, perturbed)",
           "return loss if gamma == 0 else loss + l_reg(clean, perturbed)",
           "γ ignored in student_loss (and so in mke_loss and the per-member reduce form): L_pl + L_reg whatever γ > 0",
           (T_OBJ, T_ENS), timeout=240),
    Mutant("ensemble-dropout-no-rescale", ENS,
           "out[s].bernoulli_(1.0 - ps, generator=g).div_(1.0 - ps)",
           "out[s].bernoulli_(1.0 - ps, generator=g)",
           "ensemble dropout keeps units without the 1/(1−p) rescaling (MLPEnsemble._draw_keep)",
           (T_ENS,), k="plain_torch or dropout"),
    Mutant("holm-sorted-order", STATS,
           'multipletests(np.where(finite, p, 1.0)[members], alpha=alpha, method="holm")',
           'multipletests(np.sort(np.where(finite, p, 1.0)[members]), alpha=alpha, method="holm")',
           "holm_adjust returns the adjusted p values in sorted order, not in the input order",
           (T_PAIRED,), k="holm or compare_methods"),
    Mutant("record-drops-git-revision", "mke_theory/core/records.py",
           "        git_revision=git_revision(),\n", "",
           "make_record no longer writes git_revision",
           ("tests/theory/test_records.py",)),
    Mutant("check-reads-du-labels", "mke_theory/diagnose.py",
           'return check(arrays["unlabeled_alpha"], arrays["unlabeled_beta"], encoded["pseudo_labels"],',
           'return check(arrays["unlabeled_alpha"], arrays["unlabeled_beta"], '
           'arrays.get("unlabeled_labels", encoded["pseudo_labels"]),',
           "the check takes D_u's true labels for the pseudo labels when a bundle holds them",
           ("tests/theory/test_diagnose.py",), k="true_labels_of_d_u"),
    # ---- the calibrated verdict (issue 24) ----
    Mutant("calibration-drops-lambda", "mke_theory/diagnose.py",
           '+ lam * (o["mm"]', '+ 0.0 * (o["mm"]',
           "the score leaves out the cross-fitted probe's gain over the teacher (λ dropped)",
           ("tests/theory/test_diagnose.py",), k="score or lambda"),
    Mutant("calibration-drops-offset", "mke_theory/diagnose.py",
           'est = c["slope"] * float(s.mean()) + c["offset"]', 'est = c["slope"] * float(s.mean())',
           "the calibrated estimate forgets its offset",
           ("tests/theory/test_diagnose.py",), k="score or offset"),
    Mutant("calibration-drops-gap", "mke_theory/diagnose.py",
           'half = Z95 * float(np.sqrt((c["slope"] * se) ** 2 + c["gap"] ** 2))',
           'half = Z95 * float(c["slope"] * se)',
           "the interval covers the validation sampling only, not the gap term the validation data cannot see",
           ("tests/theory/test_diagnose.py",), k="score"),
    Mutant("calibration-sign-swapped", "mke_theory/diagnose.py",
           'return (o["student_like"] - o["um"]) + lam * (o["mm"] - o["teacher"])',
           'return (o["um"] - o["student_like"]) + lam * (o["mm"] - o["teacher"])',
           "the student-like probe's gain over the α probe enters with the wrong sign",
           ("tests/theory/test_diagnose.py",), k="score or informative"),
    Mutant("student-like-is-crossfitted", "mke_theory/diagnose.py",
           "mm, student_like = _crossfit(real, folds), real[STUDENT_WEIGHT]",
           "mm = student_like = _crossfit(real, folds)",
           "the student-like probe picks β's weight by cross-fitting, as if the student could leave noise out",
           ("tests/theory/test_diagnose.py",), k="pure_noise"),
    Mutant("unclear-band-above-tau", "mke_theory/diagnose.py",
           'if est > c["tau"] and not guarded:', 'if est > c["tau"] + margin and not guarded:',
           "a positive estimate within one standard error of tau is called unclear (MKE not run) instead of helps",
           ("tests/theory/test_diagnose.py",), k="verdict_rule"),
    Mutant("alarm-never-raised", "mke_theory/diagnose.py",
           'if deficit["high"] < -BROKEN_DEFICIT:', "if False:",
           "pseudo labels far worse than the teacher's validation score (rows out of line) are not flagged",
           ("tests/theory/test_diagnose.py",), k="out_of_line or much_worse"),
    Mutant("probe-uniform-votes", "mke_theory/diagnose.py",
           "weight = np.where(exact.any(axis=1, keepdims=True), exact, 1.0 / dist)", "weight = np.ones_like(dist)",
           "the kNN probe counts its neighbours' votes equally instead of by 1 / distance",
           (T_INTERNALS,), k="probe"),
    Mutant("probe-one-neighbour-short", "mke_theory/diagnose.py",
           "near = np.argpartition(d2, k - 1, axis=1)[:, :k]", "near = np.argpartition(d2, k - 1, axis=1)[:, :k - 1]",
           "the kNN probe votes with k − 1 neighbours",
           (T_INTERNALS,), k="probe"),
    Mutant("beta-not-shuffled", "mke_theory/diagnose.py",
           "u_beta[rng.permutation(len(u_beta))]", "u_beta",
           "the shuffled-β control keeps β's rows in place (β's contribution is always 0)",
           ("tests/theory/test_diagnose.py",), k="informative"),
    Mutant("guarantee-from-searched-c", "mke_theory/diagnose.py",
           "certified = label_correction(err, mu, lower)", "certified = label_correction(err, mu, upper.c)",
           "'guaranteed' from the search's upper bound on c instead of the certified lower bound",
           ("tests/theory/test_diagnose.py",), k="certified_c"),
    Mutant("mm-ball-alpha-only", "mke_theory/diagnose.py",
           '"mm": t_radius([za, zb], input_noise)', '"mm": t_radius([za], input_noise)',
           "the MM space's ball ignores β's share of the perturbation T",
           ("tests/theory/test_diagnose.py",), k="ball"),
    Mutant("a-bar-fixed", "mke_theory/diagnose.py",
           "return float(min(1.0, max(max(errors), 1.0 / counts.min())))", "return 0.5",
           "ā fixed at 1/2 instead of the teacher's largest per-class error",
           ("tests/theory/test_diagnose.py",), k="a_bar"),
    Mutant("certified-c-largest-degrees", "mke_theory/expansion/certificate.py",
           "edges = np.cumsum(np.sort(dense.sum(axis=1)))[:largest]",
           "edges = np.cumsum(np.sort(dense.sum(axis=1))[::-1])[:largest]",
           "the certified bound counts the largest degrees of V, not the smallest: no longer a lower bound",
           ("tests/theory/test_diagnose.py",), k="never_exceeds"),
    # ---- losses and pseudo labels (objective) ----
    Mutant("kl-reversed", OBJ,
           "kl = (torch.xlogy(targets, targets) - targets * log_p).sum(dim=class_dim)",
           "kl = (log_p.exp() * (log_p - torch.log(targets.clamp(min=1e-12)))).sum(dim=class_dim)",
           "soft L_pl is KL(f_s ‖ ỹ) instead of KL(ỹ ‖ f_s)",
           (T_OBJ,)),
    Mutant("ce-sign-flipped", OBJ,
           "nll = -log_p.gather(class_dim, t.clamp(min=0).unsqueeze(class_dim)).squeeze(class_dim)",
           "nll = log_p.gather(class_dim, t.clamp(min=0).unsqueeze(class_dim)).squeeze(class_dim)",
           "hard L_pl is +log p (the student is trained away from its pseudo labels)",
           (T_OBJ,)),
    Mutant("ignore-index-not-ignored", OBJ,
           "        nll = nll * valid\n", "",
           "pseudo_label_loss counts targets equal to ignore_index (as class 0)",
           (T_OBJ,)),
    Mutant("soft-labels-unnormalised", OBJ,
           "return torch.softmax(teacher_logits.detach() / temperature, dim=class_dim)",
           "return torch.exp(teacher_logits.detach() / temperature)",
           "soft pseudo labels are exp(logits/τ), not normalised to a distribution",
           (T_OBJ,)),
    Mutant("consistency-on-logits", OBJ,
           "    p = torch.softmax(student_logits, dim=class_dim)\n"
           "    q = torch.softmax(perturbed_logits, dim=class_dim)\n",
           "    p = student_logits\n    q = perturbed_logits\n",
           "L_reg compares logits instead of probabilities",
           (T_OBJ,)),
    Mutant("relative-noise-without-abs", OBJ,
           "return x + scale * x.abs().mean(dim=(-2, -1), keepdim=True) * eps",
           "return x + scale * x.mean(dim=(-2, -1), keepdim=True) * eps",
           "relative_gaussian scales by mean(x), not mean(|x|) (≈ no noise on centred data)",
           (T_OBJ, T_ENS), timeout=240),
    Mutant("dropout-no-rescale", STACKED,
           "return x * _uniform_like(x).ge_(self.p).div_(1.0 - self.p).to(x.dtype)",
           "return x * _uniform_like(x).ge_(self.p).to(x.dtype)",
           "the networks' Dropout without the 1/(1−p) rescaling",
           ("tests/experiments/test_stacked_layers.py",)),
    Mutant("hard-pseudo-labels-argmin", OBJ,
           "return teacher_logits.argmax(dim=class_dim)", "return teacher_logits.argmin(dim=class_dim)",
           "hard pseudo labels take the least likely class",
           (T_OBJ,)),
    # ---- ensemble and TwoMoon seeds ----
    Mutant("ensemble-member-seed-off-by-one", ENS,
           "gens = [torch.Generator().manual_seed(s) for s in seeds]",
           "gens = [torch.Generator().manual_seed(s + 1) for s in seeds]",
           "every ensemble member is seeded with its seed + 1",
           (T_ENS,), k="plain_torch or seed"),
    Mutant("analytic-backward-drops-the-mean-gradient", ENS,
           "g1 = relative_gaussian_backward(cache[\"a1\"], reg[\"feature_noise\"], cache[\"eps\"], g1)",
           "pass",
           "the ensemble's analytic backward pass treats mean|h| of feature noise as a constant",
           (T_ENS,), k="plain_torch"),
    Mutant("analytic-backward-ignores-dropout", ENS,
           "            g1 = g1 * cache[\"keep\"]\n", "            pass\n",
           "the analytic backward pass lets the gradient through dropped units",
           (T_ENS,), k="plain_torch"),
    Mutant("soft-grad-without-target-mass", OBJ,
           "grad = log_p.exp() * targets.sum(dim=class_dim, keepdim=True) - targets",
           "grad = log_p.exp() - targets.sum(dim=class_dim, keepdim=True) * targets",
           "the soft-label gradient of L_pl is not softmax·Σỹ − ỹ",
           (T_OBJ,), k="analytic"),
    Mutant("notebook-rng-skips-feature-draws", ENS,
           'reg["draw_feature"] = reg["active_feature"] | (self.rng == "notebook")',
           'reg["draw_feature"] = reg["active_feature"]',
           "--rng notebook does not draw the notebook's feature noise when b = 0 (its streams drift)",
           ("tests/theory/test_twomoon.py",), k="notebook", timeout=240),
    Mutant("labels-encoded-from-zero", "mke_theory/core/bundle.py",
           "classes = list(range(found[0], found[-1] + 1)) if found else []",
           "classes = list(range(0, found[-1] + 1)) if found else []",
           "integer labels 1..K become K+1 classes (class 0 without samples), as before issue 16",
           ("tests/experiments/test_arrays_labels.py",)),
    Mutant("predictor-skips-standardisation", "mke_experiments/protocol/predictor.py",
           'x = zscore(x, stats["scale"], stats["mean"], stats["std"])', "pass",
           "the saved student takes raw inputs without the run's standardisation (the newcomer's 28.6 %)",
           ("tests/experiments/test_predictor.py",)),
    Mutant("external-teacher-ignored", SEEDS,
           "    if plan.external_teacher:  # your own teacher: its pseudo labels from the bundle, no training",
           "    if False:",
           "a bundle's own pseudo labels are ignored and a teacher is trained on D_l anyway",
           ("tests/experiments/test_own_teacher.py",), timeout=240),
    Mutant("official-seeds-shifted", "mke_theory/toy/twomoon.py",
           "s = rng.randint(0, 100)", "s = rng.randint(0, 100) + 1",
           "twomoon.official_seeds are the notebook's draws shifted by one",
           ("tests/theory/test_twomoon.py::test_seeds_follow_the_notebook_stream_without_repeats",)),
    # ---- noise models ----
    Mutant("symmetric-noise-can-keep-the-class", "mke_theory/noise.py",
           "offset = rng.integers(1, n_classes, size=labels.shape[0])",
           "offset = rng.integers(0, n_classes, size=labels.shape[0])",
           "symmetric noise may 'flip' to the true class: error rate η(K−1)/K instead of η",
           ("tests/theory/test_noise.py",)),
    Mutant("structured-noise-count-off", "mke_theory/noise.py",
           "n_flip = int(np.floor(eta * n + 0.5))", "n_flip = int(np.floor(eta * (n - 1) + 0.5))",
           "structured noise flips round(η(n−1)) samples instead of round(ηn)",
           ("tests/theory/test_noise.py",)),
    Mutant("pair-transition-diagonal", "mke_theory/noise.py",
           "transition[classes, classes] = 1.0 - rates\n    transition[classes, (classes + 1) % n_classes] += rates",
           "transition[classes, classes] = 1.0 - rates\n    transition[classes, (classes - 1) % n_classes] += rates",
           "pair flipping moves class i to i − 1 instead of i + 1",
           ("tests/theory/test_noise.py",)),
    # ---- statistics ----
    Mutant("t-interval-dof-n", STATS,
           "_st.t.ppf(0.5 + confidence / 2, x.size - 1)", "_st.t.ppf(0.5 + confidence / 2, x.size)",
           "t interval with n degrees of freedom instead of n − 1",
           (T_STATS,)),
    Mutant("bootstrap-without-replacement", STATS,
           "g[rng.integers(0, g.size, size=(m, g.size))]",
           "g[np.argsort(rng.random((m, g.size)), axis=1)]",
           "bootstrap resamples are permutations (drawn without replacement)",
           (T_PAIRED,), k="bootstrap"),
    Mutant("paired-test-unpaired", STATS,
           "res = _st.ttest_rel(a, b)", "res = _st.ttest_ind(a, b)",
           "the paired comparison runs an unpaired (independent samples) t-test",
           (T_PAIRED,), k="paired_comparison or compare_methods or paired_difference or swapping"),
    Mutant("iqm-trims-ten-percent", STATS,
           "return float(_st.trim_mean(_check_values(values), 0.25))",
           "return float(_st.trim_mean(_check_values(values), 0.1))",
           "interquartile mean trims 10 % per side instead of 25 %",
           (T_PAIRED,), k="interquartile or iqm"),
    # ---- expansion and bounds ----
    Mutant("neighbourhood-radius-not-doubled", "mke_theory/expansion/graph.py",
           'query_pairs(2.0 * radius, output_type="ndarray")  # (m, 2), i < j',
           'query_pairs(radius, output_type="ndarray")  # (m, 2), i < j',
           "neighbourhood graph links points within r instead of 2r (N(x) = balls that intersect)",
           ("tests/theory/test_expansion.py",)),
    Mutant("radius-from-wrong-neighbour", "mke_theory/expansion/graph.py",
           "radius = float(np.quantile(distances[:, k], quantile))",
           "radius = float(np.quantile(distances[:, k - 1], quantile))",
           "choose_radius takes the (k−1)-th neighbour's distance (column 0 is the point itself)",
           ("tests/theory/test_expansion.py",)),
    Mutant("bound-constant-halved", "mke_theory/bounds.py",
           "shrink = 2.0 / (c - 1.0)  # 2/(c−1); 0 at c = inf",
           "shrink = 1.0 / (c - 1.0)  # 2/(c−1); 0 at c = inf",
           "self-training bound with 1/(c−1) instead of 2/(c−1)",
           ("tests/theory/test_bounds.py",)),
    Mutant("correction-threshold-gap", "mke_theory/bounds.py",
           "gap = err - 2.0 * mu", "gap = err - mu",
           "min_c_for_correction uses Err − μ instead of Err − 2μ",
           ("tests/theory/test_bounds.py",)),
    # ---- records ----
    Mutant("schema-version-not-checked", "mke_theory/core/records.py",
           'if record["schema_version"] != SCHEMA_VERSION:',
           'if record["schema_version"] is None:',
           "validate_record accepts any schema version",
           ("tests/theory/test_records.py",)),
    Mutant("config-hash-key-order", "mke_theory/core/records.py",
           'json.dumps(_jsonable(config), sort_keys=True, separators=(",", ":"))',
           'json.dumps(_jsonable(config), sort_keys=False, separators=(",", ":"))',
           "config_hash depends on the order of the config's keys",
           ("tests/theory/test_records.py",)),
    # ---- generators and perturbations ----
    Mutant("twomoon-split-dl-du", "mke_theory/generators.py",
           "train_test_split(x_train, y_train, test_size=0.9, random_state=random_state)",
           "train_test_split(x_train, y_train, test_size=0.8, random_state=random_state)",
           "TwoMoon keeps 60 labeled / 240 unlabeled points instead of 30 / 270",
           ("tests/theory/test_generators.py",
            "tests/theory/test_twomoon.py::test_official_split_sizes_and_modalities")),
    Mutant("shared-specific-du-overlaps-dl", "mke_theory/generators.py",
           "slice(n_labeled, n_labeled + n_unlabeled)", "slice(n_labeled - 1, n_labeled + n_unlabeled - 1)",
           "shared_specific: D_u starts one sample early, so it shares a sample with D_l (sizes unchanged)",
           ("tests/theory/test_generators.py",)),
    Mutant("modality-dropout-drops-both", "mke_experiments/perturbations.py",
           "fb * ~(drop & ~which).view(shape)", "fb * ~drop.view(shape)",
           "modality dropout zeroes β on every dropped sample, so both modalities go when α does",
           ("tests/experiments/test_perturbations.py",)),
    # ---- metrics ----
    Mutant("confusion-transposed", "mke_experiments/metrics.py",
           "np.bincount(target * n_classes + pred,", "np.bincount(pred * n_classes + target,",
           "confusion matrix with rows = predicted, columns = true class",
           ("tests/experiments/test_metrics.py",)),
    Mutant("top5-is-top1", "mke_experiments/metrics.py",
           "top5=float(hit.any(axis=1).mean())", "top5=float(hit[:, 0].mean())",
           "top-5 accuracy computed as top-1",
           ("tests/experiments/test_metrics.py",)),
    # ---- pipeline and training loop ----
    Mutant("noisy-student-loses-dl", SEEDS,
           '            inputs = (joined(t["labeled_alpha"], inputs[0]),)\n'
           "            return inputs, torch.cat([labeled, targets.to(labeled.dtype)]), extra",
           "            return inputs, targets, extra",
           "the NOISY student trains on D_u's pseudo labels only, without D_l and its labels",
           (T_LEAK, T_EXP), k=f"(test_leakage and ({FAST_TASKS})) or noisy or student_data", timeout=180),
    Mutant("confident-mask-inverted", SEEDS,
           "targets = targets.masked_fill(~keep, IGNORE)", "targets = targets.masked_fill(keep, IGNORE)",
           "mm_student_confident learns from the unconfident pseudo labels only (select mask inverted)",
           (T_EXP + "::test_confident_mm_student_is_one_table_row_and_reduces_to_the_mke_student",), timeout=180),
    Mutant("resume-without-generator-state", "mke_experiments/train/stacking.py",
           'self.shuffles[s].set_state(state["generator"])', "pass",
           "resume restores model and optimiser but not the shuffling generator",
           (T_EXP + "::test_resume_after_an_interruption_gives_the_same_records",), timeout=180),
    # ---- seeds batched in one fit: member s must draw, learn and select on its own ----
    Mutant("stacked-dropout-member-0-generator", STACKED,
           "torch.rand(x.shape[1:], generator=g, out=u[s])",
           "torch.rand(x.shape[1:], generator=generators[0], out=u[s])",
           "stacked members draw their dropout masks from member 0's generator",
           (T_BATCH,), k="batched_with_others and val"),
    Mutant("stacked-noise-member-0-generator", STACKED,
           "members = [draw(tuple(t[s] for t in tensors), g) for s, g in enumerate(generators)]",
           "members = [draw(tuple(t[s] for t in tensors), generators[0]) for s, g in enumerate(generators)]",
           "stacked members draw their perturbation T from member 0's generator",
           (T_BATCH,), k="batched_with_others and val"),
    Mutant("stacked-targets-of-member-0", LOOP,
           "targets[torch.arange(stack.size)[:, None], idx]",
           "targets[torch.zeros(stack.size, dtype=torch.long)[:, None], idx]",
           "stacked members all train on member 0's targets (its teacher's pseudo labels)",
           (T_BATCH,), k="batched_with_others and val"),
    Mutant("stacked-selection-labels-of-member-0", LOOP,
           "value = float(selection.metric(predicted[s], m.select_on))",
           "value = float(selection.metric(predicted[s], members[0].select_on))",
           "stacked members select their epoch on member 0's labels (agreement with member 0's teacher)",
           (T_BATCH,), k="batched_with_others and agreement"),
    # ---- streaming from a prepared cache (issue 13) ----
    Mutant("shard-unequal-shares", "mke_experiments/train/loader.py",
           "    return order[..., : n - n % world][..., rank::world]", "    return order[..., rank::world]",
           "ranks get unequal shares of an epoch (not DistributedSampler's rule: DDP ranks would desynchronise)",
           (T_STREAM,), k="distributed_sampler"),
    Mutant("lazy-split-id-ignores-rows", "mke_theory/core/split.py",
           'h.update(f"{name}:lazy:{a.content_id};".encode())', 'h.update(f"{name}:lazy:{a.key};".encode())',
           "the split id of cache-backed parts ignores which rows and which conversion they hold",
           (T_STREAM,), k="split_id"),
    Mutant("lazy-rows-read-sorted", "mke_experiments/data/rows.py",
           "                out[order[lo:hi]] = base[ranked[lo:hi] - self.starts[b]]",
           "                out[lo:hi] = base[ranked[lo:hi] - self.starts[b]]",
           "a batch read from the cache comes back in file order, not in the order asked (rows and labels mismatch)",
           (T_STREAM,), k="own_rows or in_memory", timeout=180),
    Mutant("loader-draws-global-generator", "mke_experiments/train/loader.py",
           "            generator=torch.Generator())  # its own", "            )  # its own",
           "the DataLoader draws its seed from the global generator that Dropout2d-style layers use",
           (T_STREAM,), k="own_rows"),
    Mutant("prepare-resumes-other-parameters", "mke_experiments/data/cache.py",
           '        if isinstance(state, dict) and state.get("header") == header:',
           "        if isinstance(state, dict):",
           "a prepare rerun with other parameters continues the interrupted one's shards (a mixed cache)",
           ("tests/experiments/test_cache.py",), k="restart or other or interrupted"),
    Mutant("load-keeps-invalid-rows", "mke_experiments/data/cache.py",
           "    rows = np.flatnonzero(np.load(paths[VALID], allow_pickle=False))",
           "    rows = np.arange(len(np.load(paths[VALID], allow_pickle=False)))",
           "the rows of missing or unreadable clips (zeros) are loaded as data",
           ("tests/experiments/test_cache.py",), k="valid"),
    Mutant("teacher-output-never-reused", SEEDS,
           "reuse=finished is not None))  # a finished", "reuse=False))  # a finished",
           "a rerun recomputes the teacher's output over all of D_u instead of reading the seed's artifact",
           (T_STREAM,), k="teacher_output"),
    # ---- issue 23: identity by content, files that cannot run code, labels ----
    Mutant("content-key-from-fingerprint", "mke_experiments/data/cache.py",
           "{manifest['content_digest'][:32]}/{name}/{entry['sha256']}\"",
           "{manifest['source_fingerprint']}/{name}\"",
           "a run's split id sees a cache by its source fingerprint (names and sizes), not its content: a cache of "
           "swapped files resumes the other's records",
           ("tests/experiments/test_identity.py",), k="content_key_follows"),
    Mutant("rerun-skips-the-rehash", "mke_experiments/data/cache.py",
           "    if _changed_items(spec, stored, now, items, describe):",
           "    if False and _changed_items(spec, stored, now, items, describe):",
           "a prepare rerun trusts names and sizes: a file overwritten keeping its size is 'up to date'",
           ("tests/experiments/test_identity.py",), k="rerun_rebuilds"),
    Mutant("checkpoint-unpickles", "mke_experiments/train/checkpoints.py",
           'return torch.load(path, map_location="cpu", weights_only=True)',
           'return torch.load(path, map_location="cpu", weights_only=False)',
           "model files and checkpoints are unpickled: a crafted file runs its code when opened",
           ("tests/experiments/test_safe_files.py",), k="crafted"),
    Mutant("labels-not-nfc", "mke_theory/core/bundle.py",
           'return unicodedata.normalize("NFC", value).strip()', "return value",
           "string labels are compared as typed: NFD 'café' and 'dog ' become classes of their own",
           ("tests/experiments/test_arrays_labels.py",), k="nfd"),
    # ---- issue 24 point 7: the check's statistical internals (tests/theory/test_check_internals.py) ----
    Mutant("certified-lambda2-signed", "mke_theory/expansion/certificate.py",
           "lam2_sq = float(np.max(np.delete(values, top) ** 2)) if n_i > 1 else 0.0",
           "lam2_sq = float(np.max(np.delete(values, top))) ** 2 if n_i > 1 else 0.0",
           "the spectral certificate squares the second largest signed eigenvalue, missing a large negative one "
           "(bipartite graphs): no longer a lower bound",
           (T_INTERNALS,), k="known or spectral"),
    Mutant("certified-covers-at-half-the-class", "mke_theory/expansion/certificate.py",
           "np.where(covered >= n_i - 1e-9, np.inf,", "np.where(covered >= 0.5 * n_i, np.inf,",
           "the spectral certificate calls a set that reaches half its class one that reaches all of it (c = +inf)",
           (T_INTERNALS,), k="known or spectral"),
    Mutant("certified-small-classes-not-enumerated", "mke_theory/expansion/certificate.py",
           "if n_i <= BRUTE_FORCE_MAX_VERTICES:\n            best = min(best, brute_force_expansion(",
           "if n_i < 0:\n            best = min(best, brute_force_expansion(",
           "classes of at most 16 samples get the (loose) spectral bound instead of the exact enumeration",
           (T_INTERNALS,), k="known"),
    Mutant("validation-zscored-with-own-statistics", "mke_theory/diagnose.py",
           "return [zscore(x, *stats) for x in (train, *others)]",
           "return [zscore(x, *zscore_stats(x)) for x in (train, *others)]",
           "the validation data are standardised with their own mean and std, not D_u's: a shifted validation "
           "population looks like D_u",
           (T_INTERNALS,), k="standardised"),
    Mutant("interval-drops-sampling-variance", "mke_theory/diagnose.py",
           "se = np.sqrt(d.var(ddof=1) / len(d) + extra_variance)", "se = np.sqrt(extra_variance)",
           "the paired interval leaves out the validation sampling's variance",
           (T_INTERNALS,), k="interval"),
    Mutant("interval-drops-extra-variance", "mke_theory/diagnose.py",
           "se = np.sqrt(d.var(ddof=1) / len(d) + extra_variance)", "se = np.sqrt(d.var(ddof=1) / len(d))",
           "the paired interval leaves out the extra variance (β's contribution: the shuffles' spread)",
           (T_INTERNALS,), k="interval"),
    Mutant("interval-z-one-sided", "mke_theory/diagnose.py",
           "Z95 = 1.959963984540054", "Z95 = 1.6448536269514722",
           "the 95 % intervals use the one-sided 95 % quantile (a 90 % interval)",
           (T_INTERNALS,), k="interval"),
    Mutant("beta-spread-without-one-more-shuffle", "mke_theory/diagnose.py",
           "spread = draws.mean(axis=1).var(ddof=1) * (1 + 1 / N_PERMUTATIONS)",
           "spread = draws.mean(axis=1).var(ddof=1)",
           "β's contribution's spread forgets that the real probe is one more shuffle (factor 1 + 1/N)",
           (T_INTERNALS,), k="interval"),
    Mutant("beta-spread-not-passed", "mke_theory/diagnose.py",
           "beta_contribution=_paired(mm, shuffled, extra_variance=spread)",
           "beta_contribution=_paired(mm, shuffled)",
           "β's contribution's interval covers the validation sampling only, not the shuffles' spread",
           (T_INTERNALS,), k="interval"),
    Mutant("crossfit-in-sample", "mke_theory/diagnose.py",
           "out[folds != k] = correct[best][folds != k]", "out[folds == k] = correct[best][folds == k]",
           "β's weight is scored on the fold it was chosen on (in-sample selection favours noise)",
           (T_INTERNALS,), k="weight or crossfit"),
    Mutant("crossfit-chosen-on-all-samples", "mke_theory/diagnose.py",
           "best = max(correct, key=lambda w: correct[w][folds == k].mean())",
           "best = max(correct, key=lambda w: correct[w].mean())",
           "β's weight is chosen on every validation sample, the scored ones included",
           (T_INTERNALS,), k="weight or crossfit"),
    Mutant("crossfit-folds-not-shuffled", "mke_theory/diagnose.py",
           "folds = rng.permutation(np.arange(len(val_labels)) % 2)", "folds = np.arange(len(val_labels)) % 2",
           "the cross-fitting folds alternate with the validation data's order (a sorted file gives class folds)",
           (T_INTERNALS,), k="weight or crossfit"),
    Mutant("max-samples-pseudo-labels-misaligned", "mke_theory/diagnose.py",
           "alpha, beta, pseudo_labels = alpha[keep], beta[keep], pseudo_labels[keep]",
           "alpha, beta, pseudo_labels = alpha[keep], beta[keep], pseudo_labels[:max_samples]",
           "under --max-samples the pseudo labels are the first rows, not those of the kept samples",
           (T_INTERNALS,), k="max_samples"),
    Mutant("max-samples-beta-misaligned", "mke_theory/diagnose.py",
           "alpha, beta, pseudo_labels = alpha[keep], beta[keep], pseudo_labels[keep]",
           "alpha, beta, pseudo_labels = alpha[keep], beta[:max_samples], pseudo_labels[keep]",
           "under --max-samples β's rows are the first rows, not those of the kept samples",
           (T_INTERNALS,), k="max_samples"),
    Mutant("mu-within-r", "mke_theory/diagnose.py",
           "mu = ex.overlap_separation(labels, points, radius)", "mu = ex.separation(labels, points, radius)",
           "μ counts pairs within r, not 2r: a class gap between r and 2r reads μ = 0 and 'guaranteed'",
           ("tests/theory/test_theory_wording.py",), k="gap"),
)


# ---- copies of the repository ------------------------------------------------------------------------------


def source_files(root: Path) -> list[str]:
    """Tracked files and untracked files git does not ignore, as they are on disk now."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                         capture_output=True, check=True).stdout.decode()
    return sorted({p for p in out.split("\0") if p and (root / p).is_file()})


def snapshot(root: Path, dest: Path) -> int:
    """Copy the working tree's source files from ``root`` into ``dest`` (read-only use of ``root``)."""
    files = source_files(root)
    for rel in files:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, target)
    return len(files)


def check_mutant(tree: Path, m: Mutant) -> str | None:
    """Why ``m`` cannot be applied to ``tree`` (None: it can)."""
    path = tree / m.file
    if not path.is_file():
        return f"{m.file} does not exist"
    n = path.read_text(encoding="utf-8").count(m.old)
    if n != 1:
        return f"old text found {n} times in {m.file} (must be exactly once)"
    if m.old == m.new:
        return "old and new text are equal"
    return None


def apply_mutant(tree: Path, m: Mutant) -> None:
    path = tree / m.file
    text = path.read_text(encoding="utf-8")
    path.unlink()  # a new file (new inode, new mtime) rather than an edit in place
    path.write_text(text.replace(m.old, m.new, 1), encoding="utf-8")


# ---- running pytest in a copy ------------------------------------------------------------------------------

PLUGIN = textwrap.dedent('''
    """pytest plugin of benchmarks/mutation_check.py: write the ids of failed tests and collectors as JSON."""
    import json
    import os

    _failed, _broken = set(), set()


    def pytest_runtest_logreport(report):
        if report.failed:
            _failed.add(report.nodeid)


    def pytest_collectreport(report):
        if report.failed:
            _broken.add(report.nodeid)


    def pytest_sessionfinish(session, exitstatus):
        with open(os.environ["MUTATION_CHECK_REPORT"], "w") as f:
            json.dump({"failed": sorted(_failed), "broken": sorted(_broken), "exitstatus": int(exitstatus)}, f)
''')


@dataclass
class Outcome:
    status: str  # killed, SURVIVED, TIMEOUT, BROKEN (not applied), ERROR (pytest refused the selection)
    seconds: float
    detail: str = ""


class Runner:
    def __init__(self, python: str, work: Path, jobs: int, timeout_scale: float):
        self.python, self.work, self.jobs, self.timeout_scale = python, work, jobs, timeout_scale
        self.deselect: list[str] = []
        self.ignore: list[str] = []
        self.plugin_dir = work / "_plugin"
        self.plugin_dir.mkdir()
        (self.plugin_dir / "_mutation_check_report.py").write_text(PLUGIN)
        self._procs: set[subprocess.Popen] = set()
        self._lock = threading.Lock()

    def env(self, tree: Path, plugin: bool = False) -> dict:
        env = dict(os.environ)
        path = [str(tree)] + ([str(self.plugin_dir)] if plugin else [])
        env["PYTHONPATH"] = os.pathsep.join(path)  # the copy first: it shadows the editable install
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # no .pyc that could outlive a mutation
        env.pop("PYTEST_ADDOPTS", None)
        # One intra-op thread per run (unless the caller says otherwise): the tests train tiny models, and on
        # a shared two-core machine torch's spinning threads make a run many times slower under load.
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env.setdefault(var, "1")
        return env

    def pytest_args(self, tree: Path, tests, k: str | None, stop_first: bool) -> list[str]:
        args = [self.python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tree),
                "--hypothesis-seed=0", "--tb=line", "-rfE"]
        if stop_first:
            args.append("-x")
        if k:
            args += ["-k", k]
        args += [f"--deselect={d}" for d in self.deselect] + [f"--ignore={i}" for i in self.ignore]
        return args + list(tests)

    def run(self, args: list[str], tree: Path, env: dict, timeout: float) -> tuple[int | None, str, float]:
        """(return code or None on timeout, output, seconds); a timed-out run's process group is killed."""
        t0 = time.perf_counter()
        proc = subprocess.Popen(args, cwd=tree, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True)
        with self._lock:
            self._procs.add(proc)
        try:
            out, _ = proc.communicate(timeout=timeout)
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            self.kill(proc)
            out, _ = proc.communicate()
            rc = None
        finally:
            with self._lock:
                self._procs.discard(proc)
        return rc, out or "", time.perf_counter() - t0

    @staticmethod
    def kill(proc: subprocess.Popen) -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the group this script started for the run, by its id
        except ProcessLookupError:
            pass

    def kill_all(self) -> None:
        with self._lock:
            for proc in list(self._procs):
                self.kill(proc)

    def import_location(self, tree: Path) -> str | None:
        """None if a child process imports both packages from ``tree``, else what it imported."""
        code = "import mke_theory, mke_experiments; print(mke_theory.__file__); print(mke_experiments.__file__)"
        rc, out, _ = self.run([self.python, "-c", code], tree, self.env(tree), 120)
        if rc != 0:
            return f"the import failed (rc {rc}): {out.strip()[-500:]}"
        paths = [Path(line.strip()).resolve() for line in out.strip().splitlines()[-2:]]
        wrong = [str(p) for p in paths if not p.is_relative_to(tree.resolve())]
        return f"imported from outside the copy: {', '.join(wrong)}" if wrong else None

    def baseline(self, tree: Path, mutants) -> tuple[list[str], list[str], float, dict[str, str], list[str]]:
        """Run every selection once on the unmutated copy.

        Returns (failed node ids, collectors that could not be collected, seconds, {mutant: why its
        selection cannot run}, problems that make the whole check meaningless). Selections without
        ``-k`` run together (one by one if pytest refuses the union); each ``-k`` selection on its own.
        """
        plain = [m for m in mutants if not m.k]
        groups = [(tuple(sorted({t for m in plain for t in m.tests})), None, plain)] if plain else []
        for tests, k in sorted({(m.tests, m.k) for m in mutants if m.k}):
            groups.append((tests, k, [m for m in mutants if (m.tests, m.k) == (tests, k)]))
        failed, broken, invalid, problems, total = set(), set(), {}, [], 0.0
        while groups:
            tests, k, members = groups.pop(0)
            timeout = self.timeout_scale * max(300.0, sum(m.timeout for m in members))
            report = self.work / "_baseline.json"
            report.unlink(missing_ok=True)
            env = dict(self.env(tree, plugin=True), MUTATION_CHECK_REPORT=str(report))
            args = self.pytest_args(tree, tests, k, stop_first=False)
            args[3:3] = ["-p", "_mutation_check_report"]
            rc, out, seconds = self.run(args, tree, env, timeout)
            total += seconds
            if rc in (4, 5):  # a test id that does not exist, or nothing collected: the list has rotted
                selections = sorted({m.tests for m in members})
                if len(selections) > 1:  # find the culprit: each selection of the union on its own
                    groups += [(sel, k, [m for m in members if m.tests == sel]) for sel in selections]
                    continue
                what = "a test id that does not exist" if rc == 4 else "the selection collects no test"
                for m in members:
                    invalid[m.name] = f"{what} ({' '.join(tests)}{f' -k {k!r}' if k else ''}): {tail(out, 200)}"
                continue
            if rc is None:
                problems.append(f"baseline timed out after {seconds:.0f}s: {' '.join(tests)}")
                continue
            if not report.exists() or rc not in (0, 1, 2):
                problems.append(f"baseline pytest exited {rc} for {' '.join(tests)} (-k {k}): {tail(out)}")
                continue
            result = json.loads(report.read_text())
            failed.update(result["failed"])
            broken.update(b for b in result["broken"] if b)
        return sorted(failed), sorted(broken), total, invalid, problems

    def mutant(self, snap: Path, m: Mutant, keep: bool) -> Outcome:
        tree = self.work / m.name
        shutil.copytree(snap, tree, symlinks=True)
        try:
            why = check_mutant(tree, m)
            if why is not None:
                return Outcome("BROKEN", 0.0, f"mutation not applied: {why}")
            apply_mutant(tree, m)
            rc, out, seconds = self.run(self.pytest_args(tree, m.tests, m.k, stop_first=True), tree, self.env(tree),
                                        m.timeout * self.timeout_scale)
            if keep:
                (tree / "_mutation_check_output.txt").write_text(out)
            if rc is None:
                return Outcome("TIMEOUT", seconds, f"over {m.timeout * self.timeout_scale:.0f}s")
            if rc == 0:
                return Outcome("SURVIVED", seconds, summary(out))
            if rc in (1, 2):  # tests failed, or collection/import failed: the mutant was noticed
                return Outcome("killed", seconds, first_failure(out))
            what = {3: "pytest internal error", 4: "pytest usage error (a test id that does not exist?)",
                    5: "no tests collected (check the -k expression and the ids)"}.get(rc, f"pytest exited {rc}")
            return Outcome("ERROR", seconds, f"{what}: {tail(out)}")
        finally:
            if not keep:
                shutil.rmtree(tree, ignore_errors=True)


def tail(out: str, n: int = 400) -> str:
    return " ".join(out.strip().split())[-n:]


def first_failure(out: str) -> str:
    """The first ``FAILED``/``ERROR`` line of pytest's short summary, shortened."""
    for line in out.splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            return "by " + line.split(" - ")[0].split(" ", 1)[1][:150]
    return ""


def summary(out: str) -> str:
    lines = [line for line in out.strip().splitlines() if re.search(r"\d+ (passed|failed|skipped|deselected)", line)]
    return lines[-1].strip() if lines else ""


# ---- the command -------------------------------------------------------------------------------------------


def select(names: str | None) -> list[Mutant]:
    if not names:
        return list(MUTANTS)
    by_name = {m.name: m for m in MUTANTS}
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in by_name]
    if unknown:
        raise SystemExit(f"unknown mutant(s): {', '.join(unknown)}; see --list")
    return [by_name[n] for n in wanted]


def line(status: str, name: str, seconds: float, detail: str) -> str:
    return f"{status:<8}  {name:<36} {seconds:7.1f}s  {detail}"


def list_mutants(mutants) -> int:
    bad = 0
    for m in mutants:
        why = check_mutant(ROOT, m)
        bad += why is not None
        print(f"{m.name}  [{m.file}]  {'ERROR: ' + why if why else 'applies'}")
        print(f"    {m.description}")
        print(f"    tests: {' '.join(m.tests)}" + (f"  -k {m.k!r}" if m.k else "") + f"  (timeout {m.timeout:.0f}s)")
    print(f"{len(mutants)} mutants, {bad} that do not apply to the working tree")
    return 2 if bad else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated mutant names (default: all)")
    parser.add_argument("--list", action="store_true", help="list the mutants, check they apply, run nothing")
    parser.add_argument("--jobs", type=int, default=1, help="mutants run at once (default 1)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copies (and pytest output)")
    parser.add_argument("--timeout-scale", type=float, default=1.0, help="multiply every timeout (default 1)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the run of the tests on the unmutated copy")
    default_python = ROOT / ".venv" / "bin" / "python"
    parser.add_argument("--python", default=str(default_python if default_python.exists() else sys.executable),
                        help="interpreter of the test runs (default: the repository's .venv)")
    args = parser.parse_args(argv)
    mutants = select(args.only)
    if args.list:
        return list_mutants(mutants)
    if args.jobs < 1 or args.timeout_scale <= 0:
        parser.error("--jobs must be at least 1 and --timeout-scale positive")

    start = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="mke-mutation-check-"))
    runner = Runner(args.python, work, args.jobs, args.timeout_scale)
    snap = work / "_snapshot"
    invalid: dict[str, str] = {}
    not_measured = f"mutation score: 0/{len(mutants)} killed (not measured: harness error above)"
    try:
        n_files = snapshot(ROOT, snap)
        print(f"snapshot of {n_files} files of {ROOT} in {work}; {len(mutants)} mutants, --jobs {args.jobs}; {TARGET}",
              flush=True)
        problem = runner.import_location(snap)
        if problem:
            print(f"ERROR: the test runs would not test the copy: {problem}")
            print(not_measured)
            return 2
        canary = runner.mutant(snap, CANARY, args.keep)
        print(line(canary.status, CANARY.name, canary.seconds, f"(harness check, not scored) {canary.detail}"),
              flush=True)
        if canary.status != "killed":
            print("ERROR: the canary survived: the tests do not run the mutated copy, so no score would mean anything")
            print(not_measured)
            return 2
        if not args.no_baseline:
            base = work / "_baseline"
            shutil.copytree(snap, base, symlinks=True)
            failed, broken, seconds, invalid, problems = runner.baseline(base, mutants)
            if not args.keep:
                shutil.rmtree(base, ignore_errors=True)
            print(f"baseline: the selected tests on the unmutated copy took {seconds:.1f}s; "
                  f"{len(failed)} failed, {len(broken)} could not be collected", flush=True)
            for p in problems:
                print(f"ERROR: {p}")
            if problems:
                print(not_measured)
                return 2
            for nodeid in failed:
                print(f"  deselected (fails without a mutation): {nodeid}")
            for nodeid in broken:
                print(f"  ignored (cannot be collected without a mutation): {nodeid}")
            runner.deselect = failed
            runner.ignore = [b.split("::")[0] for b in broken]
        outcomes: dict[str, Outcome] = {}
        for m in mutants:  # selections pytest refused in the baseline are not run (a mutation that rotted first)
            if m.name in invalid:
                why = check_mutant(snap, m)
                o = Outcome("BROKEN", 0.0, f"mutation not applied: {why}") if why else Outcome("ERROR", 0.0,
                                                                                               invalid[m.name])
                outcomes[m.name] = o
                print(line(o.status, m.name, o.seconds, o.detail), flush=True)
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            futures = {pool.submit(runner.mutant, snap, m, args.keep): m for m in mutants if m.name not in outcomes}
            try:
                for future in as_completed(futures):
                    m = futures[future]
                    outcomes[m.name] = o = future.result()
                    print(line(o.status, m.name, o.seconds, o.detail or m.description), flush=True)
            except KeyboardInterrupt:
                for f in futures:
                    f.cancel()
                runner.kill_all()
                raise
        killed = sum(o.status == "killed" for o in outcomes.values())
        survived = [m.name for m in mutants if outcomes[m.name].status == "SURVIVED"]
        timeouts = [m.name for m in mutants if outcomes[m.name].status == "TIMEOUT"]
        errors = [m.name for m in mutants if outcomes[m.name].status in ("ERROR", "BROKEN")]
        if survived:
            print(f"survived: {', '.join(survived)}")
        if timeouts:
            print(f"timed out (not counted as killed): {', '.join(timeouts)}")
        if errors:
            print(f"harness errors (not counted as killed): {', '.join(errors)}")
        print(f"total {time.perf_counter() - start:.0f}s" + (f"; copies kept in {work}" if args.keep else ""))
        print(f"mutation score: {killed}/{len(mutants)} killed")
        return 2 if errors else (1 if survived or timeouts else 0)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
