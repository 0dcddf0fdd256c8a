"""``fit_mke`` as the CLI runs it: the same torch thread count (one for the small networks of ``arrays``, set back
afterwards), several seeds per call trained as ``mke-exp run --seeds`` trains them, and the table it prints."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import mke_experiments.protocol.api as api
from mke_experiments.cli import cli
from mke_experiments.config import resolve_config
from mke_experiments.protocol import MKEResult, SeedResult, fit_mke
from mke_experiments.tasks import get_task
from mke_experiments.testing.bundles import write_bundle
from mke_theory.core.errors import MKEError
from mke_theory.core.records import read_records

METHODS = ("teacher", "mm_student")
SEEDS = (0, 1, 2)
EPOCHS = 5
pytestmark = pytest.mark.filterwarnings("ignore::mke_experiments.protocol.plan.FallbackWarning")  # no val set


@pytest.fixture(autouse=True)
def torch_threads_kept():
    """Each test starts from 3 torch threads (not the policy's 1, so that a forgotten restore shows), without
    ``$MKE_THREADS``, and leaves torch's count as it found it (the CLI sets it for the whole process)."""
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MKE_THREADS", raising=False)
        yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return write_bundle(tmp_path_factory.mktemp("bundle") / "bundle.npz")


@pytest.fixture(scope="module")
def config():
    return resolve_config(get_task("arrays"), (), EPOCHS)


@pytest.fixture(scope="module")
def three_seeds(bundle, config):
    return fit_mke(dict(np.load(bundle)), config, device="cpu", methods=METHODS, seeds=list(SEEDS))


@pytest.fixture
def threads_in_training(monkeypatch):
    """The torch thread count each ``run_seeds`` call (the training) of ``fit_mke`` saw."""
    seen = []
    run_seeds = api.run_seeds

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return run_seeds(*args, **kwargs)

    monkeypatch.setattr(api, "run_seeds", spy)
    return seen


def by_key(records) -> dict:
    return {(r["method"], r["seed"]): r for r in records}


def test_arrays_trains_on_one_thread_and_torch_gets_its_count_back(bundle, config, threads_in_training):
    fit_mke(dict(np.load(bundle)), config, device="cpu", methods=("teacher",))
    assert threads_in_training == [1]  # Task.small, as mke-exp run arrays
    assert torch.get_num_threads() == 3  # the caller's count again


def test_threads_and_the_environment_variable_are_honoured(bundle, config, threads_in_training, monkeypatch):
    fit_mke(dict(np.load(bundle)), config, device="cpu", methods=("teacher",), threads=2)
    monkeypatch.setenv("MKE_THREADS", "2")
    fit_mke(dict(np.load(bundle)), config, device="cpu", methods=("teacher",))
    fit_mke(dict(np.load(bundle)), config, device="cpu", methods=("teacher",), threads=1)  # beats the variable
    assert threads_in_training == [2, 2, 1]
    assert torch.get_num_threads() == 3


def test_the_thread_count_comes_back_after_an_error(bundle, config, monkeypatch):
    def broken(*args, **kwargs):
        assert torch.get_num_threads() == 1
        raise RuntimeError("stop")

    monkeypatch.setattr(api, "run_seeds", broken)
    with pytest.raises(RuntimeError, match="stop"):
        fit_mke(dict(np.load(bundle)), config, device="cpu")
    assert torch.get_num_threads() == 3


@pytest.mark.parametrize("threads", [0, -1, 1.5, "many"])
def test_a_bad_thread_count_is_one_sentence(bundle, config, threads):
    with pytest.raises(MKEError, match="threads must be a whole number of threads >= 1"):
        fit_mke(dict(np.load(bundle)), config, device="cpu", threads=threads)
    assert torch.get_num_threads() == 3


def test_seeds_together_equal_seeds_alone_and_the_cli(three_seeds, bundle, config, tmp_path):
    assert isinstance(three_seeds, MKEResult) and len(three_seeds.seeds) == len(SEEDS)
    assert all(isinstance(r, SeedResult) for r in three_seeds.seeds)
    assert [r["seed"] for r in three_seeds.records] == [s for s in SEEDS for _ in METHODS]  # seed by seed
    together = by_key(three_seeds.records)
    assert three_seeds.plan.stacked  # trained as the CLI trains them: stacked in one fit
    for i, seed in enumerate(SEEDS):
        alone = fit_mke(dict(np.load(bundle)), config, seed=seed, device="cpu", methods=METHODS)
        assert by_key(three_seeds.seeds[i].records).keys() == {(m, seed) for m in METHODS}
        for record in alone.records:
            assert together[record["method"], seed]["metrics"] == record["metrics"], (record["method"], seed)
    out = tmp_path / "runs"
    ran = CliRunner().invoke(cli, ["run", "arrays", "--data", str(bundle), "--methods", ",".join(METHODS),
                                   "--seeds", ",".join(map(str, SEEDS)), "--epochs", str(EPOCHS), "--device", "cpu",
                                   "--out", str(out)])
    assert ran.exit_code == 0, ran.output
    by_cli = by_key(read_records(out))
    assert by_cli.keys() == together.keys()
    for key, record in by_cli.items():
        assert together[key]["metrics"] == record["metrics"], key
        np.testing.assert_allclose([e["loss"] for e in together[key]["history"]],
                                   [e["loss"] for e in record["history"]], rtol=1e-6, err_msg=str(key))
    # the comparison is not vacuous: the seeds' students differ
    assert len({tuple(e["loss"] for e in together["mm_student", s]["history"]) for s in SEEDS}) == len(SEEDS)
    assert three_seeds.table() in ran.output  # the table the CLI prints, from the same function


def test_the_table_names_every_method_and_the_seeds(three_seeds):
    table = three_seeds.table()
    for method in METHODS:
        assert method in table
    assert "arrays: test accuracy (%), 3 seeds" in table
    assert "MKEResult(task='arrays', seeds=[0, 1, 2]" in repr(three_seeds)


def test_the_table_calls_the_run_by_its_name(bundle, config):
    result = fit_mke(dict(np.load(bundle)), replace(config, name="my-data"), device="cpu", methods=("teacher",))
    assert {r["task"] for r in result.records} == {"my-data"}
    assert "my-data: test accuracy (%), 1 seeds" in result.table()


def test_one_seed_reads_as_the_seed_result_it_used_to_be(bundle, config):
    result = fit_mke(dict(np.load(bundle)), config, seed=1, device="cpu", methods=METHODS)
    (only,) = result.seeds
    assert result.records == only.records and {r["seed"] for r in result.records} == {1}
    assert result.models is only.models and result.predictors is only.predictors and result.check is only.check
    assert result.pseudo_labels is only.pseudo_labels and len(result.pseudo_labels) == 120
    split = dict(np.load(bundle))
    predicted = result.predictors["mm_student"].predict(split["test_alpha"], split["test_beta"])
    student = by_key(result.records)["mm_student", 1]["metrics"]["test_accuracy"]
    assert (predicted == split["test_labels"]).mean() == pytest.approx(student)
    assert "1 seeds" in result.table() and "mm_student" in result.table()


def test_several_seeds_keep_each_seeds_models(three_seeds):
    assert three_seeds.models is three_seeds.seeds[0].models  # the first seed's, as for one seed
    students = [r.models["mm_student"] for r in three_seeds.seeds]
    assert len({id(s) for s in students}) == len(SEEDS)
    assert not torch.equal(students[0].encoder_alpha.net[0].weight, students[1].encoder_alpha.net[0].weight)


@pytest.mark.parametrize("kwargs, message", [
    (dict(seed=0, seeds=[0, 1]), "give fit_mke seed= \\(one seed\\) or seeds= \\(a list of seeds\\), not both"),
    (dict(seeds=[0, 0]), "distinct whole numbers >= 0"),
    (dict(seeds=[]), "distinct whole numbers >= 0"),
    (dict(seeds=3), "seeds must be a list"),
    (dict(seeds=[1, -1]), "distinct whole numbers >= 0"),
    (dict(seed=-1), "seed must be a whole number >= 0"),
])
def test_bad_seeds_are_one_sentence(bundle, config, kwargs, message, threads_in_training):
    with pytest.raises(MKEError, match=message):
        fit_mke(dict(np.load(bundle)), config, device="cpu", **kwargs)
    assert threads_in_training == []  # refused before anything trains
