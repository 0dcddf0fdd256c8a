"""The training loop's per-epoch work: checkpoints only every ``train.checkpoint_every_s`` (and at the
end and the interrupt point), model selection by the primary metric computed without scikit-learn,
and no heavy import (scikit-learn, ``torch._dynamo``) that training itself does not use."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mke_experiments import metrics, models, train
from mke_experiments.config import ModelConfig, TrainConfig, record_dict, resolve_config
from mke_experiments.protocol import run_seed
from mke_experiments.tasks import get_task
from mke_experiments.train import checkpoints
from mke_theory.core.records import read_records
from mke_theory.core.split import IGNORE
from mke_theory.generators import gaussian_mixture

ROOT = Path(__file__).resolve().parents[2]


def small_split():
    return gaussian_mixture(n_classes=3, n_labeled=30, n_unlabeled=120, n_test=60, random_state=0)


def count_writes(monkeypatch) -> list:
    written = []
    real = checkpoints.atomic_write
    monkeypatch.setattr(checkpoints, "atomic_write",
                        lambda path, write: (written.append(Path(path).name), real(path, write)))
    return written


@pytest.mark.parametrize("every_s, stop_after, writes", [(60.0, None, 1), (0.0, None, 4), (60.0, 2, 1)])
def test_checkpoints_are_written_every_t_seconds_at_the_end_and_at_the_interrupt(tmp_path, monkeypatch, every_s,
                                                                                 stop_after, writes):
    """Before: one torch.save per member and epoch (1,200 for mfeat). Now a fit of seconds writes once,
    after its last epoch (what resume and the kept teacher need); killed at ``stop_after``, it writes there."""
    cfg = resolve_config(get_task("arrays"), ("train.epochs=4", f"train.checkpoint_every_s={every_s}"))
    written = count_writes(monkeypatch)
    run_seed(cfg, small_split(), 0, ("teacher",), out=tmp_path, stop_after=stop_after)
    assert len(written) == writes and all("teacher" in name for name in written)
    state = torch.load(next((tmp_path / "checkpoints").glob("*.pt")), weights_only=False)
    assert state["epoch"] == (1 if stop_after else 3)


def test_the_checkpoint_cadence_is_not_part_of_the_record(tmp_path):
    """How often a run checkpoints changes nothing it computes: records and their hash stay those of runs
    before the field existed, and a run with another cadence skips the finished records."""
    task = get_task("arrays")
    default, often = resolve_config(task), resolve_config(task, ("train.checkpoint_every_s=0",))
    old = default.as_dict()
    for key in ("checkpoint_every_s", "workers", "prefetch", "log_every", "early_stopping", "momentum", "schedule",
                "step_size", "step_gamma", "poly_power"):  # how a run is carried out, not what it computes
        # (early_stopping: recorded only when set, test_logs.py; momentum and the schedule: test_config_files.py)
        del old["train"][key]
    old["model"].pop("seg_head", None)  # recorded only when set (issue 25)
    old["data"].pop("n_labeled", None)  # arrays' D_l subsample (mke-exp sweep): recorded only when set (issue 24)
    del old["name"]  # --name: what records and tables call the run, a label outside the hashed config
    assert record_dict(default) == record_dict(often) == old
    cfg = dataclasses.replace(often, train=dataclasses.replace(often.train, epochs=2))
    first = run_seed(cfg, small_split(), 0, ("teacher",), out=tmp_path).records
    again = run_seed(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, checkpoint_every_s=30.0)),
                     small_split(), 0, ("teacher",), out=tmp_path).records
    assert again == first and len(read_records(tmp_path)) == 1
    assert "checkpoint_every_s" not in first[0]["config"]["train"]


def test_selection_score_is_the_full_evaluations_primary_metric():
    rng = np.random.default_rng(0)
    k = 5
    pred, labels = rng.integers(0, k, 300), rng.integers(0, k, 300)
    t = torch.as_tensor
    assert metrics.selection_score(t(pred).short(), t(labels), "accuracy", k) == \
        metrics.classification_metrics(pred, labels, k)["accuracy"]
    scores = rng.standard_normal((300, k))
    multi_hot = (rng.random((300, k)) < 0.3).astype(float)
    for y in (labels, multi_hot):
        assert metrics.selection_score(t(scores.argmax(1)), t(y), "top1", k) == \
            pytest.approx(metrics.scores_metrics(scores, y, k)["top1"])
    maps, truth = rng.integers(0, k, (4, 6, 7)), rng.integers(-1, k, (4, 6, 7))  # -1: void pixels
    assert IGNORE == -1
    assert metrics.selection_score(t(maps), t(truth), "miou", k) == \
        pytest.approx(metrics.segmentation_metrics(maps, truth, k)["miou"])
    assert metrics.agreement(t(pred), t(pred)) == 1.0
    with pytest.raises(ValueError, match="no selection score"):
        metrics.selection_score(t(pred), t(labels), "mean_rank", k)


def test_every_selectable_metric_is_the_value_the_evaluation_reports():
    """Before: selection re-implemented accuracy, top-1 and mIoU in an if-chain, so a task whose primary metric
    was macro-F1 or mAP could not select models. Now each metric is read off the evaluation that reports it."""
    rng = np.random.default_rng(1)
    k, n = 4, 200
    labels = rng.integers(0, k, n)
    scores = rng.standard_normal((n, k)) + 2.0 * np.eye(k)[labels]  # better than chance, not perfect
    pred = scores.argmax(1)
    maps, truth = rng.integers(0, k, (3, 5, 6)), rng.integers(-1, k, (3, 5, 6))
    reported = {**metrics.classification_metrics(pred, labels, k), **metrics.scores_metrics(scores, labels, k)}
    seg = metrics.segmentation_metrics(maps, truth, k)
    for name, (source, _) in metrics.SELECTABLE.items():
        if name in seg:
            got, want = metrics.selection_score(torch.as_tensor(maps), torch.as_tensor(truth), name, k), seg[name]
        else:
            x = scores if source == "scores" else pred
            got, want = metrics.selection_score(torch.as_tensor(x), torch.as_tensor(labels), name, k), reported[name]
        assert got == pytest.approx(want, abs=1e-12), name
        assert metrics.needs_scores(name) == (source == "scores")


def test_a_task_must_name_a_primary_metric_selection_can_compute():
    from mke_experiments.tasks import Task, get_task

    with pytest.raises(ValueError, match="no selection score for the primary metric 'kappa'"):
        Task(name="t", description="", default_config=get_task("mfeat").default_config, load=None, primary="kappa")


def test_a_score_metric_selects_the_epoch_from_class_scores():
    """mAP as the primary metric: fit hands the metric (S, n, K) float scores, not classes, and keeps its best epoch."""
    torch.manual_seed(0)
    x = torch.randn(60, 5)
    y = (x[:, 0] > 0).long()
    seen = []

    def m_ap(scores, labels):
        seen.append(scores)
        return metrics.selection_score(scores, labels, "map", 2)

    model = models.build_teacher((5,), 2, ModelConfig(hidden=8))
    fitted = train.fit([train.Member(model, y, select_on=y)], (x,), TrainConfig(epochs=3, batch_size=16),
                       selection=train.Selection((x,), m_ap, scores=True))[0]
    assert seen and all(s.dtype == torch.float32 and s.shape == (60, 2) for s in seen)
    best = max(range(3), key=lambda e: fitted.history[e]["selection_score"])
    assert fitted.best_epoch == best


def test_training_imports_neither_scikit_learn_nor_torch_dynamo():
    """Before: the first torch.optim optimiser imported torch._dynamo (+1.3 s) and every epoch's selection
    called scikit-learn's f1_score. A fit with selection (stacked members, the plain path of one
    module) loads neither; the final record's metrics still import scikit-learn, where they are used."""
    code = """
import sys, torch
from mke_experiments import metrics, models, protocol, train
from mke_experiments.config import ModelConfig, TrainConfig, MKEConfig
x, y = (torch.randn(200, 6), torch.randn(200, 4)), torch.randint(0, 3, (200,))
score = lambda p, l: metrics.selection_score(p, l, "accuracy", 3)
nets = [models.build_student((6,), (4,), 3, ModelConfig(hidden=8)) for _ in range(2)]
plain = torch.nn.Sequential(torch.nn.Linear(6, 3), torch.nn.BatchNorm1d(3))
train.fit([train.Member(n, y, s, select_on=y) for s, n in enumerate(nets)], x, TrainConfig(epochs=2), MKEConfig(),
          regularised=True, selection=train.Selection(x, score))
train.fit([train.Member(plain, y, select_on=y)], x[:1], TrainConfig(epochs=2, optimizer="sgd"),
          selection=train.Selection(x[:1], score))
print([m for m in ("sklearn", "torch._dynamo") if m in sys.modules])
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": ""})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("stacked", [True, False], ids=["stacked", "one-network"])
def test_train_one_epoch_called_alone_is_an_epoch_of_fit(stacked):
    """``train_one_epoch`` on the set-up ``fit`` makes (stacked students with dropout, modality dropout and T; one
    network with batch norm and SGD) gives, epoch after epoch, the losses and weights of ``fit``."""
    from mke_experiments import perturbations
    from mke_experiments.config import MKEConfig
    from mke_experiments.train.loader import Batches
    from mke_experiments.train.stacking import Generators, Stack

    torch.manual_seed(0)
    x, y = (torch.randn(70, 6), torch.randn(70, 4)), torch.randint(0, 3, (70,))
    targets = [y, (y + 1) % 3] if stacked else [y]
    cfg = TrainConfig(epochs=2, batch_size=16, optimizer="adam" if stacked else "sgd")
    mke = MKEConfig(input_noise=0.5)
    inputs = x if stacked else x[:1]

    def members():
        torch.manual_seed(1)
        if stacked:
            nets = [models.build_student((6,), (4,), 3, ModelConfig(hidden=8, dropout=0.3, modality_dropout=0.3))
                    for _ in targets]
        else:
            nets = [torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.BatchNorm1d(5), torch.nn.Linear(5, 3))]
        return [train.Member(net, t, seed=5 + s) for s, (net, t) in enumerate(zip(nets, targets))]

    fitted = train.fit(members(), inputs, cfg, mke, regularised=True)

    alone = members()
    device = torch.device("cpu")
    generators = Generators([m.seed for m in alone], device, stacked)
    stack = Stack([m.model for m in alone], device, stacked)
    opt = train.Optimizer(stack.params, cfg)
    loss = train.Loss(True, perturbations.input_noise(mke.input_noise),
                      dict(loss_form=mke.loss_form, gamma=mke.gamma), device=device)
    read = Batches(inputs, device)
    for epoch in range(cfg.epochs):
        entries = train.train_one_epoch(stack, opt, loss, read, torch.stack(targets) if stacked else y, generators,
                                        epoch, cfg.batch_size)
        assert entries == [f.history[epoch] for f in fitted]
    for s, f in enumerate(fitted):
        mine, theirs = stack.weights(s), f.model.state_dict()
        assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
