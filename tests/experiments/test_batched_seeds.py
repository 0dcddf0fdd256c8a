"""Seeds batched in the one training loop: the record of a seed is the same whether it trains alone
(``--seeds 3``) or stacked with other seeds (``--seeds 0,1,2,3,4``), with every random draw (init,
shuffling, T, dropout, modality dropout), target and selection label its own."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mke_experiments import models
from mke_experiments.config import resolve_config
from mke_experiments.protocol import run_seeds, seeds_together
from mke_experiments.tasks import get_task
from mke_experiments.train.optim import Optimizer
from mke_theory.core.records import read_records

SEEDS = (0, 1, 2)
REGULARISED = ("train.epochs=4", "model.dropout=0.3", "model.modality_dropout=0.3", "mke.input_noise=0.5")


@pytest.fixture(scope="module")
def mfeat():
    task = get_task("mfeat")
    return task.load(task.default_config.data)


def by_method(result) -> dict:
    return {r["method"]: r for r in result.records}


def assert_same_record(alone: dict, batched: dict) -> None:
    name = f"{alone['method']} seed {alone['seed']}"
    assert batched["metrics"] == alone["metrics"], name
    assert batched["best_epoch"] == alone["best_epoch"], name
    assert [e["epoch"] for e in batched["history"]] == [e["epoch"] for e in alone["history"]]
    np.testing.assert_allclose([e["loss"] for e in batched["history"]], [e["loss"] for e in alone["history"]],
                               rtol=1e-5, err_msg=name)
    assert ([e.get("selection_score") for e in batched["history"]]
            == [e.get("selection_score") for e in alone["history"]]), name
    assert (alone["ensemble_size"], batched["ensemble_size"]) == (1, len(SEEDS))


@pytest.mark.parametrize("selection", ["val", "agreement"])
def test_a_seed_batched_with_others_gets_the_record_it_gets_alone(mfeat, tmp_path, selection):
    """Teacher and MKE student (dropout, modality dropout and input noise on). Every seed of the batch is
    compared with its own run alone, in which it is member 0: a member s > 0 drawing from member 0's
    generators, training on member 0's targets (its teacher's pseudo labels) or selecting on member 0's
    labels (agreement: its own teacher's predictions) gets another record than alone."""
    cfg = resolve_config(get_task("mfeat"), REGULARISED + (f"train.selection={selection}",))
    methods = ("teacher", "mm_student")
    batched = run_seeds(cfg, mfeat, SEEDS, methods, out=tmp_path / "batched")
    for i, seed in enumerate(SEEDS):
        (alone,) = run_seeds(cfg, mfeat, [seed], methods, out=tmp_path / f"alone{seed}")
        for method in methods:
            assert_same_record(by_method(alone)[method], by_method(batched[i])[method])
    # the comparison is not vacuous: seeds differ in every random draw, so their records differ
    for method in methods:
        losses = {tuple(e["loss"] for e in by_method(r)[method]["history"]) for r in batched}
        assert len(losses) == len(SEEDS), method
    # the selected member comes back as a plain network of the task's class, with the selected weights
    student = batched[1].models["mm_student"]
    assert type(student) is models.Student and student.encoder_alpha.net[0].weight.dim() == 2
    x = (torch.as_tensor(mfeat.test_alpha), torch.as_tensor(mfeat.test_beta))
    with torch.no_grad():
        acc = (student(*x).argmax(1).numpy() == mfeat.test_labels).mean()
    assert acc == pytest.approx(by_method(batched[1])["mm_student"]["metrics"]["test_accuracy"])
    assert len(read_records(tmp_path / "batched")) == len(SEEDS) * len(methods)


def test_run_split_batches_vector_tasks_only():
    task = get_task("mfeat")
    cfg = task.default_config
    assert seeds_together(cfg, task.load(cfg.data))
    ravdess = get_task("ravdess")  # frame and spectrogram CNNs with batch norm: one seed per fit
    assert not seeds_together(ravdess.default_config, _ravdess_split(ravdess))


def _ravdess_split(task):
    import tempfile

    folder = tempfile.mkdtemp()
    data, small = task.smoke(folder)
    cfg = resolve_config(task, small)
    return task.load_split(cfg, data, small)[1]


def test_members_resumed_from_different_epochs_train_in_one_loop_each(mfeat, tmp_path):
    """An earlier run of seeds 0, 1 was killed after 2 of 4 epochs; a run of seeds 0, 1, 2 resumes 0 and 1
    from their checkpoints and starts 2 from scratch: every record equals an uninterrupted run's."""
    cfg = resolve_config(get_task("mfeat"), REGULARISED)
    methods = ("teacher", "mm_student")
    fresh = run_seeds(cfg, mfeat, SEEDS, methods, out=tmp_path / "fresh")
    run_seeds(cfg, mfeat, [0, 1], methods, out=tmp_path / "S", stop_after=2)
    assert len(list((tmp_path / "S" / "checkpoints").glob("*teacher*.pt"))) == 2
    resumed = run_seeds(cfg, mfeat, SEEDS, methods, out=tmp_path / "S")
    for a, b in zip(fresh, resumed):
        for method in methods:
            ra, rb = by_method(a)[method], by_method(b)[method]
            assert (ra["metrics"], ra["history"], ra["best_epoch"]) == (rb["metrics"], rb["history"], rb["best_epoch"])


def test_one_optimiser_over_stacked_tensors_steps_each_member_as_torch_optim_alone():
    """Adam (with L2 weight decay) and SGD with momentum are element-wise: the stacked update of member s
    equals ``torch.optim`` on member s's own tensor, bit for bit."""
    shapes = {"w": (10, 7), "b": (10,)}
    for optimizer in ("adam", "sgd"):
        cfg = resolve_config(get_task("arrays"), (f"train.optimizer={optimizer}", "train.lr=0.01")).train
        gens = [torch.Generator().manual_seed(s) for s in range(3)]
        alone = [{k: torch.randn(v, generator=g).requires_grad_() for k, v in shapes.items()} for g in gens]
        stacked = {k: torch.stack([a[k].detach() for a in alone]).requires_grad_() for k in shapes}
        opt = Optimizer(stacked, cfg)
        kind = torch.optim.Adam if optimizer == "adam" else lambda p, **kw: torch.optim.SGD(p, momentum=0.9, **kw)
        refs = [kind(list(a.values()), lr=cfg.lr, weight_decay=cfg.weight_decay) for a in alone]
        for _ in range(5):
            for s, a in enumerate(alone):
                for k in shapes:
                    a[k].grad = torch.randn(shapes[k], generator=gens[s])
                refs[s].step()
            for k in shapes:
                stacked[k].grad = torch.stack([a[k].grad for a in alone])
            opt.step()
        for s, a in enumerate(alone):
            assert all(torch.equal(stacked[k][s], a[k]) for k in shapes), optimizer


def test_random_layers_draw_from_the_member_generators():
    """Dropout and modality dropout of stacked members: member s's masks are those of member s alone."""
    x = torch.ones(3, 64, 16)
    layer = models.Dropout(0.5).train()
    with models.drawing([torch.Generator().manual_seed(s) for s in range(3)]):
        both = layer(x)
    for s in range(3):
        with models.drawing(torch.Generator().manual_seed(s)):
            assert torch.equal(layer(x[s]), both[s])
    assert not torch.equal(both[0], both[1])
    assert layer.eval()(x) is x
