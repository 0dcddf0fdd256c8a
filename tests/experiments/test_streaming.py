"""Streaming training: a split whose images and spectrograms are rows of a stored array (``LazyRows``) trains
through the DataLoader exactly as the same split held in memory, never reads what it does not need, shards
an epoch like ``DistributedSampler`` and keeps the teacher's output on D_u as a per-seed artifact."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from torch.utils.data import DistributedSampler

from mke_experiments import protocol
from mke_experiments.config import resolve_config
from mke_experiments.data.rows import LazyRows, concat
from mke_experiments.protocol import run_seed
from mke_experiments.tasks import get_task
from mke_experiments.train.loader import Batches, shard
from mke_theory.core.split import MultimodalSplit

N = dict(labeled=24, unlabeled=40, val=16, test=16)
SETTINGS = ("train.epochs=2", "train.batch_size=8", "model.width=4", "model.hidden=16", "train.checkpoint=false")


class Counting(np.ndarray):
    """A stored array that records the rows every read asked for."""

    def __getitem__(self, item):
        if isinstance(item, np.ndarray) and item.dtype.kind == "i":
            self.__dict__.setdefault("reads", []).append(item.copy())
        return np.asarray(super().__getitem__(item))


def stored(poison_test: bool = False, seed: int = 0) -> dict:
    # (each view(Counting) is a new object: its ``reads`` start empty)
    """uint8 frames and float16 log-mel rows of a RAVDESS-shaped data set; part → its rows."""
    rng = np.random.default_rng(seed)
    n = sum(N.values())
    labels = rng.integers(0, 8, n)
    frames = rng.integers(0, 256, (n, 2, 3, 12, 12)).astype(np.uint8)
    frames[:, :, 0] = (labels * 30)[:, None, None, None]  # the class shows in the red channel
    logmel = (rng.normal(-40, 10, (n, 1, 8, 20)) + labels[:, None, None, None]).astype(np.float16)
    bounds = np.cumsum([0, *N.values()])
    parts = {name: np.arange(bounds[i], bounds[i + 1]) for i, name in enumerate(N)}
    if poison_test:  # garbage in the test rows only
        frames[parts["test"]] = 255 - frames[parts["test"]]
        logmel[parts["test"]] = np.float16(1e4)
    return dict(frames=frames.view(Counting), logmel=logmel.view(Counting), labels=labels, parts=parts)


def lazy_split(data: dict) -> MultimodalSplit:
    frames = LazyRows(data["frames"], key="frames").scaled(0.0, 255.0)
    logmel = LazyRows(data["logmel"], key="logmel")
    mean, std = logmel[np.concatenate([data["parts"]["labeled"], data["parts"]["unlabeled"]])].moments()
    logmel = logmel.scaled(mean, std + 1e-6)
    p, y = data["parts"], data["labels"]
    return MultimodalSplit(
        labeled_alpha=frames[p["labeled"]], labels=y[p["labeled"]], unlabeled_alpha=frames[p["unlabeled"]],
        unlabeled_beta=logmel[p["unlabeled"]], unlabeled_labels=y[p["unlabeled"]], val_alpha=frames[p["val"]],
        val_beta=logmel[p["val"]], val_labels=y[p["val"]], test_alpha=frames[p["test"]],
        test_beta=logmel[p["test"]], test_labels=y[p["test"]], n_classes=8, name="lazy")


def in_memory(split: MultimodalSplit) -> MultimodalSplit:
    parts = {f.name: getattr(split, f.name) for f in dataclasses.fields(split)}
    return MultimodalSplit(**{k: np.asarray(v) if getattr(v, "lazy_rows", False) else v for k, v in parts.items()})


def records(split, *settings, methods=("teacher", "mm_student"), out=None) -> dict:
    cfg = resolve_config(get_task("ravdess"), SETTINGS + settings)
    result = run_seed(cfg, split, 0, methods, out=out)
    return {r["method"]: (r["metrics"], [e["loss"] for e in r["history"]], r["best_epoch"]) for r in result.records}


def test_the_conversion_is_the_same_in_numpy_and_torch():
    """The loader converts on the device, ``np.asarray`` on the CPU: one formula, the same float32 numbers
    (a division done as a multiplication by the reciprocal on one side would differ in the last bit)."""
    rng = np.random.default_rng(1)
    for raw, shift, scale in ((rng.integers(0, 256, (64, 3, 5, 5)).astype(np.uint8), 0.0, 255.0),
                              (rng.normal(-30, 20, (64, 1, 7, 9)).astype(np.float16), -41.3, 17.7),
                              (rng.integers(0, 256, (64, 3, 5, 5)).astype(np.uint8),
                               np.array([123.7, 116.3, 103.5]).reshape(3, 1, 1),
                               np.array([58.4, 57.1, 57.4]).reshape(3, 1, 1))):
        rows = LazyRows(raw).scaled(shift, scale)
        on_device = rows.convert(torch.from_numpy(raw)).numpy()
        np.testing.assert_array_equal(on_device, np.asarray(rows))
        np.testing.assert_allclose(np.asarray(rows), (raw.astype(np.float64) - shift) / scale, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("workers", [0, 2])
def test_a_lazy_split_trains_the_records_of_the_same_split_in_memory(workers, monkeypatch):
    """The DataLoader path (with and without worker processes) gives every batch the same rows in the same
    order as slicing tensors in memory: the teacher's and the regularised MM student's records agree exactly."""
    from mke_experiments.train import loader

    started = []
    real = loader.DataLoader
    monkeypatch.setattr(loader, "DataLoader", lambda *a, **k: started.append(k["num_workers"]) or real(*a, **k))
    split = lazy_split(stored())  # 5 batches of D_u per epoch: more than 2 workers × 1 prefetch, so they start
    assert records(split, f"train.workers={workers}", "train.prefetch=1") == records(in_memory(split))
    assert max(started) == workers


def test_garbage_in_the_test_rows_changes_nothing_but_test_scores():
    """Canary: inverted frames and absurd spectrograms in the test rows of the stored arrays leave every
    training loss, validation score and selected epoch as they were; and training never reads a test row."""
    clean, poisoned = stored(), stored(poison_test=True)
    before, after = records(lazy_split(clean)), records(lazy_split(poisoned))
    for method in before:
        (m0, loss0, best0), (m1, loss1, best1) = before[method], after[method]
        assert (loss0, best0) == (loss1, best1)
        assert {k: v for k, v in m0.items() if not k.startswith("test_")} == \
               {k: v for k, v in m1.items() if not k.startswith("test_")}
    assert any(before[m][0][k] != after[m][0][k] for m in before for k in before[m][0] if k.startswith("test_")), \
        "the canary did not reach the test scores"
    data = stored()
    split = lazy_split(data)
    cfg = resolve_config(get_task("ravdess"), SETTINGS + ("train.workers=0",))
    files = protocol.RunFiles(None, "ravdess", 0, "x", split.split_id)
    protocol.SeedRun(cfg, split, 0, files, torch.device("cpu")).train_teacher()
    read = np.concatenate(data["frames"].reads + data["logmel"].reads)
    assert len(read) and not np.isin(read, data["parts"]["test"]).any()


def test_batches_read_only_their_own_rows_in_the_order_asked():
    data = stored()
    frames = LazyRows(data["frames"], key="f")[data["parts"]["unlabeled"]]
    wanted = [torch.tensor([5, 1, 30]), torch.tensor([2, 2, 0])]
    before = torch.get_rng_state()
    got = list(Batches((frames,), "cpu", workers=0)(wanted))
    assert torch.equal(torch.get_rng_state(), before), "the loader drew from the global generator (Dropout2d's)"
    read = np.concatenate(data["frames"].reads)
    assert sorted(read.tolist()) == sorted(data["parts"]["unlabeled"][torch.cat(wanted).numpy()].tolist())
    for rows, (x,) in zip(wanted, got):
        np.testing.assert_array_equal(x.numpy(), np.asarray(frames)[rows.numpy()])


@pytest.mark.parametrize("n, world", [(10, 3), (9, 3), (17, 4), (5, 1), (8, 8)])
def test_every_rank_gets_the_share_distributed_sampler_gives_it(n, world):
    """``shard`` is DistributedSampler's rule (drop_last=True) on the same permutation, for every rank."""
    for epoch in range(2):
        order = torch.randperm(n, generator=torch.Generator().manual_seed(7 + epoch))
        for rank in range(world):
            sampler = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=True, seed=7, drop_last=True)
            sampler.set_epoch(epoch)
            assert shard(order, rank, world).tolist() == list(sampler)


def test_split_id_of_lazy_parts_follows_rows_conversion_and_source():
    data = stored()
    base = lazy_split(data)
    assert base.split_id == lazy_split(data).split_id
    p = data["parts"]
    other_rows = dataclasses.replace(base, test_alpha=base.test_alpha[np.arange(1, len(p["test"]))],
                                     test_beta=base.test_beta[np.arange(1, len(p["test"]))],
                                     test_labels=base.test_labels[1:])
    other_scale = dataclasses.replace(base, unlabeled_alpha=base.unlabeled_alpha.scaled(0.0, 254.0))
    other_source = dataclasses.replace(base, unlabeled_alpha=LazyRows(data["frames"], p["unlabeled"], 0.0, 255.0,
                                                                      key="frames of another cache"))
    ids = {s.split_id for s in (base, other_rows, other_scale, other_source)}
    assert len(ids) == 4


def test_rows_of_two_stored_arrays_join_lazily_in_order():
    a, b = stored(seed=1)["frames"], stored(seed=2)["frames"]
    joined = concat(LazyRows(a, key="a")[[3, 0]], LazyRows(b, key="b")[[5]])
    np.testing.assert_array_equal(joined.read(), np.concatenate([np.asarray(a)[[3, 0]], np.asarray(b)[[5]]]))
    with pytest.raises(ValueError, match="different conversions"):
        concat(LazyRows(a).scaled(0, 255), LazyRows(b))


def test_the_teacher_output_is_saved_once_per_seed_and_reused(tmp_path, monkeypatch):
    """The teacher's logits on D_u are written as the seed's artifact; a rerun that finds the teacher finished
    reads them back (no second pass over D_u) and its students get the same pseudo labels."""
    split = lazy_split(stored())
    first = records(split, out=tmp_path)
    (folder,) = (tmp_path / "teacher_output").iterdir()
    saved = {p.name for p in folder.iterdir()}
    assert saved == {"pseudo_labels.npy", "teacher_logits.npy", "arrays.txt"}
    logits = np.load(folder / "teacher_logits.npy")
    assert logits.shape == (N["unlabeled"], 8)
    np.testing.assert_array_equal(np.load(folder / "pseudo_labels.npy"), logits.argmax(1))
    for record in tmp_path.glob("*mm_student*.json"):
        record.unlink()
    calls = []
    real = protocol.seeds.predict_logits  # where SeedRun looks it up
    monkeypatch.setattr(protocol.seeds, "predict_logits", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = records(split, out=tmp_path)
    assert again == first and not calls


def test_bench_scale_builds_a_sparse_cache_in_the_real_format_and_reads_it(tmp_path):
    """The benchmark's synthetic cache passes ``cache.load``'s checks and the task's split, and its large arrays
    are sparse: the benchmark measures the real data path, not a stand-in."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[2] / "benchmarks" / "bench_scale.py"
    spec = importlib.util.spec_from_file_location("bench_scale", path)
    bench_scale = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_scale)
    disk = bench_scale.write_cache(tmp_path, 300)
    assert disk["cache_bytes_on_disk"] < disk["cache_bytes_apparent"] / 20
    row = bench_scale.child(str(tmp_path), batches=3, batch_size=8, workers=0)
    assert row["n_unlabeled"] > 100 and row["loader_samples_per_s"] > 0 and row["peak_rss_bytes"] > 0


def test_bench_on_a_prepared_cache_times_the_tasks_loader_and_the_step_it_feeds(tmp_path):
    """``mke-exp bench ravdess --data CACHE``: the rows come from the cache (lazy, the task's own loader), the step
    fed by the loader reports its waiting fraction, and the JSON holds every row."""
    from click.testing import CliRunner

    from mke_experiments.cli import cli

    cache, overrides = get_task("ravdess").smoke(tmp_path)
    sets = [a for o in overrides for a in ("--set", o)]
    out = CliRunner().invoke(cli, ["bench", "ravdess", "--data", str(cache), "--steps", "1", "--batch-size", "4",
                                   "--device", "cpu", "--json", str(tmp_path / "b.json"), *sets])
    assert out.exit_code == 0, out.output
    rows = {r["variant"]: r for r in json.loads((tmp_path / "b.json").read_text())["rows"]}
    assert {"fp32 eager", "bf16 autocast", "bf16 + channels_last"} <= set(rows)
    alone = next(r for name, r in rows.items() if name.startswith("data loader alone"))
    fed = rows["loader + fp32 step (CPU)"]
    assert alone["samples_per_s"] > 0 and 0 <= fed["waiting_fraction"] < 1 and "waiting for data" in out.output



def test_the_bench_times_the_training_loops_own_step():
    """Before: ``mke-exp bench`` timed its own loss code and ``torch.optim.Adam``. Now its step is the loop's
    ``train_step`` with the loop's ``Optimizer`` and ``Loss``: the same weights after the same batches."""
    from mke_experiments import bench, models
    from mke_experiments.config import ModelConfig
    from mke_experiments.train import Loss, Optimizer, train_step

    cfg = resolve_config(get_task("mfeat"), ("model.dropout=0.3", "model.modality_dropout=0.3", "mke.input_noise=0.5"))
    perturb, device = get_task("mfeat").perturb(cfg), torch.device("cpu")
    x, y = (torch.randn(8, 6), torch.randn(8, 4)), torch.randint(0, 3, (8,))

    def student():
        torch.manual_seed(0)
        return models.build_student((6,), (4,), 3, ModelConfig(hidden=8, dropout=0.3, modality_dropout=0.3)).train()

    timed, looped = student(), student()
    step = bench._train_step(timed, cfg, perturb, False, device)
    opt = Optimizer(dict(looped.named_parameters()), cfg.train)
    loss = Loss(True, perturb, dict(loss_form=cfg.mke.loss_form, gamma=cfg.mke.gamma), device=device)
    draws = torch.Generator(device).manual_seed(0)
    for _ in range(3):
        step(*x, y)
        train_step(looped, opt, loss, x, y, draws)
    assert all(torch.equal(a, b) for a, b in zip(timed.state_dict().values(), looped.state_dict().values()))
    assert not torch.equal(timed.state_dict()["head_alpha.1.weight"], student().state_dict()["head_alpha.1.weight"])

def test_a_cache_backed_run_trains_under_torchrun_with_loader_workers(tmp_path):
    """Two gloo ranks on a prepared RAVDESS cache: each rank's loader starts its worker processes (4 batches of its
    share per epoch > 2 workers × 1 prefetch) inside DistributedDataParallel, and rank 0 writes the records."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from mke_theory.core.records import read_records

    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    if not Path(torchrun).exists():
        pytest.skip("torchrun not installed")
    cache, overrides = get_task("ravdess").smoke(tmp_path / "data")
    sets = [a for o in (*overrides, "train.batch_size=2", "train.workers=2", "train.prefetch=1", "train.epochs=2")
            for a in ("--set", o)]
    done = subprocess.run([torchrun, "--nproc_per_node", "2", "--master_port", "29541", "-m", "mke_experiments", "run",
                           "ravdess", "--data", str(cache), "--seeds", "0", "--methods", "teacher,mm_student",
                           "--device", "cpu", "--out", str(tmp_path / "runs"), *sets],
                          capture_output=True, text=True, timeout=600, env=dict(os.environ, OMP_NUM_THREADS="1"),
                          cwd=Path(__file__).parents[2])
    assert done.returncode == 0, done.stderr[-3000:]
    records = read_records(tmp_path / "runs")
    assert {r["method"] for r in records} == {"teacher", "mm_student"} and all(r["world_size"] == 2 for r in records)


def test_the_loader_dataset_pickles_for_spawned_workers(tmp_path):
    """Where DataLoader workers are spawned (macOS, Windows), the dataset travels pickled: a cache-backed one must
    reopen its files by path in the worker and read the same rows (an open descriptor cannot travel)."""
    import pickle

    from mke_experiments.data.rows import NpyFile
    from mke_experiments.train.loader import _Rows

    stored_rows = np.arange(60, dtype=np.float16).reshape(20, 3)
    np.save(tmp_path / "x.npy", stored_rows)
    lazy = LazyRows(NpyFile(tmp_path / "x.npy"), np.arange(5, 20), key="x").scaled(1.0, 2.0)
    dataset = _Rows((lazy,), convert=True)
    dataset.__getitems__([0])  # opens the file in this process
    (again,) = pickle.loads(pickle.dumps(dataset)).__getitems__([3, 1])
    np.testing.assert_array_equal(again.numpy(), (stored_rows[[8, 6]].astype(np.float32) - 1) / 2)
