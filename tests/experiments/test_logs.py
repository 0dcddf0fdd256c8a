"""Logs worth reading: a line every N epochs (``train.log_every``, ``--log-every``), TensorBoard's selection score,
learning rate and pseudo-label accuracy, and early stopping on the selection score (``train.early_stopping``):
members stop each on its own, a resumed run stops where an uninterrupted one does, and off (the default) changes
no record."""

from __future__ import annotations

import dataclasses
import io
import re

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from mke_experiments import metrics, models, train
from mke_experiments.cli import cli
from mke_experiments.config import ModelConfig, TrainConfig, record_dict, resolve_config
from mke_experiments.protocol import run_seed, run_seeds
from mke_experiments.tasks import get_task
from mke_experiments.testing.bundles import write_bundle
from mke_theory.core.errors import MKEError
from mke_theory.generators import gaussian_mixture

X = torch.randn(60, 5, generator=torch.Generator().manual_seed(0))
Y = (X[:, 0] > 0).long()


def with_val(split):
    other = gaussian_mixture(n_classes=3, n_labeled=30, n_unlabeled=10, n_test=40, random_state=1)
    return dataclasses.replace(split, val_alpha=other.test_alpha, val_beta=other.test_beta,
                               val_labels=other.test_labels)


def small_split(val=True):
    split = gaussian_mixture(n_classes=3, n_labeled=30, n_unlabeled=120, n_test=60, random_state=0)
    return with_val(split) if val else split


class Schedule:
    """A selection 'metric' whose score of a member is the next of its own given scores (``select_on``): a
    constructed course of the selection score, one value per epoch the member is scored."""

    def __init__(self, scores, start=0):
        self.scores, self.i = list(scores), start

    def __call__(self):
        value = self.scores[self.i]
        self.i += 1
        return value


def scheduled(pred, on: Schedule) -> float:
    return on()


def members(schedules, seeds=None, checkpoints=None):
    """Stackable networks of one architecture, member s initialised after seeding torch with its seed."""
    seeds = list(range(len(schedules))) if seeds is None else seeds
    if checkpoints is not None:
        checkpoints.mkdir(exist_ok=True)
    out = []
    for seed, on in zip(seeds, schedules):
        torch.manual_seed(seed)
        net = models.build_teacher((5,), 2, ModelConfig(hidden=8, dropout=0.2))
        ckpt = None if checkpoints is None else checkpoints / f"m{seed}.pt"
        out.append(train.Member(net, Y, seed, ckpt, dict(method="m", seed=seed), select_on=on))
    return out


def fit(schedules, epochs=8, patience=0, seeds=None, **kw):
    cfg = TrainConfig(epochs=epochs, batch_size=16, early_stopping=patience, checkpoint_every_s=0.0)
    return train.fit(members(schedules, seeds, kw.pop("checkpoints", None)), (X,), cfg,
                     selection=train.Selection((X,), scheduled, name="made_up"), **kw)


def assert_same(a, b, exact=True):
    assert (a.best_epoch, a.stopped_epoch) == (b.best_epoch, b.stopped_epoch)
    assert [e["epoch"] for e in a.history] == [e["epoch"] for e in b.history]
    assert [e.get("selection_score") for e in a.history] == [e.get("selection_score") for e in b.history]
    assert [e.get("stopped_early") for e in a.history] == [e.get("stopped_early") for e in b.history]
    wa, wb = a.model.state_dict(), b.model.state_dict()
    if exact:
        assert a.history == b.history
        assert all(torch.equal(wa[k], wb[k]) for k in wa)
    else:  # stacked against alone: the same draws, batched matrix products (test_batched_seeds.py)
        np.testing.assert_allclose([e["loss"] for e in a.history], [e["loss"] for e in b.history], rtol=1e-5)
        assert all(torch.allclose(wa[k], wb[k], rtol=1e-4, atol=1e-6) for k in wa)


STOPS = [0.1, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0, 0.0]  # best after epoch 1; patience 2 stops it after epoch 3
KEEPS = [0.1, 0.2, 0.3, 0.3, 0.4, 0.5, 0.6, 0.7]  # a tie (epoch 3) is no improvement; patience 2 never runs out


# ---- 1. the log line ----------------------------------------------------------------------------------------


def test_a_line_per_member_every_n_epochs_with_the_fields_named(capsys):
    cfg = TrainConfig(epochs=6, batch_size=16, log_every=2, lr=2e-3)
    train.fit(members([Schedule(KEEPS), Schedule(KEEPS)]), (X,), cfg,
              selection=train.Selection((X,), scheduled, name="val_accuracy"))
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 6  # epochs 2, 4, 6, for each of the two members
    pattern = (r"m seed (\d): epoch (\d)/6  loss \d+\.\d{4}  val_accuracy \d\.\d{4} \(best \d\.\d{4} at epoch \d\)  "
               r"lr 0\.002  \d+\.\d\d s/epoch")
    found = [re.fullmatch(pattern, line) for line in lines]
    assert all(found), lines
    assert [(int(m[2]), int(m[1])) for m in found] == [(2, 0), (2, 1), (4, 0), (4, 1), (6, 0), (6, 1)]
    assert "val_accuracy 0.2000 (best 0.2000 at epoch 2)" in lines[0]


def test_no_line_by_default_and_the_early_stop_is_said(capsys):
    fit([Schedule(KEEPS)], epochs=3)
    assert capsys.readouterr().err == ""
    cfg = TrainConfig(epochs=8, batch_size=16, early_stopping=2, log_every=100)
    train.fit(members([Schedule(STOPS)]), (X,), cfg, selection=train.Selection((X,), scheduled, name="s"))
    (line,) = capsys.readouterr().err.splitlines()  # log_every 100: only the stop is said
    assert "epoch 4/8" in line and line.endswith("stopped early: no improvement for 2 epochs")


def test_on_a_terminal_a_line_first_clears_the_progress_bar(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    err = Terminal()
    monkeypatch.setattr("sys.stderr", err)
    cfg = TrainConfig(epochs=2, batch_size=16, log_every=1)
    train.fit(members([Schedule(KEEPS)]), (X,), cfg, selection=train.Selection((X,), scheduled))
    lines = err.getvalue().split("\n")[:-1]
    assert len(lines) == 2 and all(line.startswith("\r\x1b[K") for line in lines)
    assert "selection_score" in lines[0]  # a Selection without a name


def test_the_run_command_takes_log_every(tmp_path):
    split = small_split()
    bundle = write_bundle(tmp_path / "b.npz", split, val_alpha=split.val_alpha, val_beta=split.val_beta,
                          val_labels=split.val_labels)
    result = CliRunner().invoke(cli, ["run", "arrays", "--data", str(bundle), "--seeds", "0,1", "--methods",
                                      "teacher,mm_student", "--epochs", "4", "--device", "cpu", "--log-every", "2"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if "s/epoch" in line]
    assert len(lines) == 8  # 2 methods x 2 seeds x epochs 2 and 4
    who = {f"{method} seed {seed}" for method in ("teacher", "mm_student") for seed in (0, 1)}
    assert {line.split(":")[0] for line in lines} == who
    assert all("val_accuracy" in line and "lr 0.001" in line for line in lines)


# ---- 2. TensorBoard ------------------------------------------------------------------------------------------


def test_tensorboard_has_the_selection_score_the_learning_rate_and_the_pseudo_label_accuracy(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = resolve_config(get_task("arrays"), ("train.epochs=3",))
    result = run_seed(cfg, small_split(), 0, ("teacher", "mm_student"), tensorboard=tmp_path / "tb")
    records = {r["method"]: r for r in result.records}

    def scalars(method):
        events = EventAccumulator(str(tmp_path / "tb" / f"arrays__{method}__seed0"))
        events.Reload()
        return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}

    teacher, student = scalars("teacher"), scalars("mm_student")
    for method, logged in (("teacher", teacher), ("mm_student", student)):
        history = records[method]["history"]
        assert [v for _, v in logged["selection/val_accuracy"]] == pytest.approx(
            [e["selection_score"] for e in history])
        assert logged["lr"] == [(e, pytest.approx(1e-3)) for e in range(3)]
        assert [s for s, _ in logged["loss"]] == [0, 1, 2]
    assert "pseudo_label_accuracy" not in teacher  # no pseudo labels
    ((step, value),) = student["pseudo_label_accuracy"]
    assert step == 0 and value == pytest.approx(records["mm_student"]["metrics"]["pseudo_label_accuracy"])


# ---- 3. early stopping -----------------------------------------------------------------------------------------


def test_a_member_stops_after_patience_epochs_without_improvement_and_keeps_its_best_epoch():
    (stopped,) = fit([Schedule(STOPS)], patience=2)
    assert [e["epoch"] for e in stopped.history] == [0, 1, 2, 3]
    assert stopped.stopped_epoch == 3 and stopped.best_epoch == 1
    assert stopped.history[-1]["stopped_early"] is True
    assert not any("stopped_early" in e for e in stopped.history[:-1])
    (two,) = fit([Schedule(KEEPS)], epochs=2)  # the weights after epoch 1 (the last of two epochs, no stop)
    best, last = stopped.model.state_dict(), two.model.state_dict()
    assert all(torch.equal(best[k], last[k]) for k in best)
    (kept,) = fit([Schedule(KEEPS)], patience=2)
    assert len(kept.history) == 8 and kept.stopped_epoch is None and kept.best_epoch == 7
    (one,) = fit([Schedule(STOPS)], patience=1)
    assert one.stopped_epoch == 2


def test_stacked_members_stop_each_on_its_own_as_alone():
    stacked = fit([Schedule(STOPS), Schedule(KEEPS), Schedule(STOPS[1:] + [0.0])], patience=2, seeds=[0, 1, 2])
    assert [f.stopped_epoch for f in stacked] == [3, None, 2]
    assert all(f.members == 3 for f in stacked)
    for s, (f, course) in enumerate(zip(stacked, (STOPS, KEEPS, STOPS[1:] + [0.0]))):
        (alone,) = fit([Schedule(course)], patience=2, seeds=[s])
        assert alone.members == 1
        assert_same(f, alone, exact=False)
    all_stop = fit([Schedule(STOPS), Schedule(STOPS)], patience=2, epochs=50)  # the loop ends with the last stop
    assert [f.stopped_epoch for f in all_stop] == [3, 3]


@pytest.mark.parametrize("stop_after", [3, 5], ids=["mid-patience", "after-a-stop"])
def test_a_resumed_run_stops_where_an_uninterrupted_one_does(tmp_path, stop_after):
    """Member 0 (best after epoch 1) stops after epoch 3; member 1 keeps improving. Interrupted after epoch 2 (member 0
    one epoch into its patience) or after epoch 4 (member 0 stopped, its checkpoint that of epoch 3), the resumed run
    gives every member's history, stop and weights bit for bit."""
    courses = (STOPS, KEEPS)
    fresh = fit([Schedule(c) for c in courses], patience=2, checkpoints=tmp_path / "fresh")
    fit([Schedule(c) for c in courses], patience=2, checkpoints=tmp_path / "cut", stop_after=stop_after)
    epochs = [torch.load(tmp_path / "cut" / f"m{s}.pt", weights_only=False)["epoch"] for s in (0, 1)]
    assert epochs == ([2, 2] if stop_after == 3 else [3, 4])
    resumed = fit([Schedule(c, start=e + 1) for c, e in zip(courses, epochs)], patience=2,
                  checkpoints=tmp_path / "cut")
    assert [f.resumed_from for f in resumed] == [e + 1 for e in epochs]
    for a, b in zip(fresh, resumed):
        assert_same(a, b)


def test_early_stopping_in_the_protocol_reaches_the_record_and_resumes(tmp_path):
    """Seeds stacked, early stopping on a real validation score: the records say where each model stopped, their
    config names the patience (a run without it keeps its config hash), and a run interrupted mid-way and resumed
    writes the same records."""
    split = small_split()
    cfg = resolve_config(get_task("arrays"), ("train.epochs=40", "train.early_stopping=3", "train.lr=0.01"))
    fresh = run_seeds(cfg, split, [0, 1], ("teacher", "mm_student"), out=tmp_path / "fresh")
    records = [r for result in fresh for r in result.records]
    stops = [next((e["epoch"] for e in r["history"] if e.get("stopped_early")), None) for r in records]
    assert any(s is not None for s in stops), stops  # the case is not vacuous
    for r, stop in zip(records, stops):
        assert r["config"]["train"]["early_stopping"] == 3
        if stop is not None:
            assert len(r["history"]) == stop + 1 and stop - r["best_epoch"] == 3
    run_seeds(cfg, split, [0, 1], ("teacher", "mm_student"), out=tmp_path / "cut", stop_after=6)
    resumed = run_seeds(cfg, split, [0, 1], ("teacher", "mm_student"), out=tmp_path / "cut")
    for a, b in zip(fresh, resumed):
        for ra, rb in zip(a.records, b.records):
            assert (ra["metrics"], ra["history"], ra["best_epoch"]) == (rb["metrics"], rb["history"], rb["best_epoch"])


def test_early_stopping_needs_model_selection():
    with pytest.raises(MKEError, match="train.selection=last does not compute"):
        resolve_config(get_task("arrays"), ("train.early_stopping=2", "train.selection=last"))
    cfg = resolve_config(get_task("arrays"), ("train.epochs=2", "train.early_stopping=2"))
    with pytest.raises(MKEError, match=r"has none \(train.selection=val without validation data\)"):
        run_seed(cfg, small_split(val=False), 0, ("teacher",))
    agreement = resolve_config(get_task("arrays"), ("train.epochs=6", "train.early_stopping=1",
                                                    "train.selection=agreement"))
    result = run_seed(agreement, small_split(val=False), 0, ("teacher", "mm_student"))
    records = {r["method"]: r for r in result.records}
    assert len(records["teacher"]["history"]) == 6  # the teacher cannot be selected by agreement: every epoch


# ---- 4. off by default: nothing changes ------------------------------------------------------------------------------


def test_off_by_default_changes_no_record(tmp_path):
    task = get_task("arrays")
    default = resolve_config(task, ("train.epochs=3",))
    assert "early_stopping" not in record_dict(default)["train"] and "log_every" not in record_dict(default)["train"]
    on = resolve_config(task, ("train.epochs=3", "train.early_stopping=1"))
    assert record_dict(on)["train"]["early_stopping"] == 1
    first = run_seed(default, small_split(), 0, ("teacher", "mm_student"), out=tmp_path).records
    logged = resolve_config(task, ("train.epochs=3", "train.log_every=1"))
    again = run_seed(logged, small_split(), 0, ("teacher", "mm_student"), out=tmp_path).records
    assert again == first  # the same config hash: the finished records are read back, not trained again


def test_a_patience_that_never_runs_out_gives_the_history_of_no_early_stopping():
    off = fit([Schedule(KEEPS), Schedule(STOPS)], seeds=[0, 1])
    never = fit([Schedule(KEEPS), Schedule(STOPS)], patience=8, seeds=[0, 1])
    for a, b in zip(off, never):
        assert_same(a, b)


def test_the_real_selection_score_is_what_stopping_reads():
    """With the library's own metric: the history's selection scores decide the stop (patience 1 on a noisy score)."""
    score = lambda p, labels: metrics.selection_score(p, labels, "accuracy", 2)  # noqa: E731
    cfg = TrainConfig(epochs=30, batch_size=16, early_stopping=1, lr=0.05)
    torch.manual_seed(0)
    net = models.build_teacher((5,), 2, ModelConfig(hidden=8, dropout=0.5))
    (f,) = train.fit([train.Member(net, Y, select_on=(Y + (X[:, 1] > 1).long()) % 2)], (X,), cfg,
                     selection=train.Selection((X,), score))
    scores = [e["selection_score"] for e in f.history]
    assert f.stopped_epoch == len(scores) - 1 < 29
    assert scores[-1] <= max(scores[:-1]) and f.best_epoch == int(np.argmax(scores))
