"""Torch's thread count is chosen on purpose (mke_theory.console): one thread for the small MLP tasks,
every core for the image and audio tasks, ``--threads N`` / ``$MKE_THREADS`` over both, and both CLIs
apply the choice before they train."""

from __future__ import annotations

import os
import re

import click
import pytest
import torch
from click.testing import CliRunner

from mke_experiments.cli import cli as exp_cli
from mke_experiments.tasks import TASKS
from mke_theory.cli import cli as theory_cli
from mke_theory.console import (
    ENV_VAR,
    MAX_N_SEEDS,
    MAX_THREADS,
    all_cores,
    choose_threads,
    parse_seeds,
    parse_threads,
    resolve_seeds,
    set_threads,
)
from mke_theory.core.errors import MKEError


@pytest.fixture(autouse=True)
def no_thread_settings(monkeypatch):
    """The defaults are tested: the shell's MKE_THREADS or torchrun's LOCAL_WORLD_SIZE must not leak in."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def is_small(name: str) -> bool:
    return TASKS[name].small if name in TASKS else name in ("twomoon", "simulate")  # the theory drivers: small


def test_the_vector_tasks_are_small_and_the_image_and_audio_tasks_are_large():
    assert {name for name in TASKS if TASKS[name].small} == {"mfeat", "arrays"}  # each task says so itself
    for name in ("ravdess", "nyudv2", "vggsound", "audioset-vggsound"):
        assert name in TASKS and not TASKS[name].small, name


def test_small_tasks_default_to_one_thread_and_large_ones_to_every_core():
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert all_cores() == usable  # os.cpu_count() unless the process is pinned to some cores
    for name in ("twomoon", "simulate", "mfeat", "arrays"):
        assert choose_threads(small=is_small(name)) == 1, name
    for name in ("ravdess", "nyudv2", "vggsound", "audioset-vggsound", "a-new-task"):
        assert choose_threads(small=is_small(name)) == all_cores(), name
    assert choose_threads(small=True) == 1 and choose_threads(small=False) == all_cores()


def test_torchrun_processes_share_the_cores_of_a_large_task(monkeypatch):
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert choose_threads(small=is_small("ravdess")) == max(1, all_cores() // 2)
    assert choose_threads(small=is_small("mfeat")) == 1
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "64000")
    assert choose_threads(small=is_small("ravdess")) == 1  # never 0


def test_the_option_then_the_environment_override_the_default(monkeypatch):
    assert choose_threads(3, small=is_small("mfeat")) == 3 and choose_threads("3", small=is_small("ravdess")) == 3
    monkeypatch.setenv(ENV_VAR, "2")
    assert choose_threads(small=is_small("mfeat")) == 2 and choose_threads(small=is_small("ravdess")) == 2
    assert choose_threads(5, small=is_small("mfeat")) == 5  # the option wins over the environment
    monkeypatch.setenv(ENV_VAR, "")
    assert choose_threads(small=is_small("mfeat")) == 1  # an empty variable is an unset one
    monkeypatch.setenv(ENV_VAR, "zero")
    with pytest.raises(MKEError, match=f"the environment variable {ENV_VAR} must be a whole number"):
        choose_threads(small=is_small("mfeat"))


@pytest.mark.parametrize("bad", [0, -1, "0", "-2", "1.5", 2.5, "many", "", " ", True, "3 threads",
                                 "²", "\u0663", "1_0", "+0"])  # str.isdigit took "²" (then int() failed: exit 70)
def test_bad_thread_counts_are_one_sentence(bad):
    with pytest.raises(MKEError, match=r"^--threads must be a whole number of threads >= 1, got "):
        parse_threads(bad)


@pytest.mark.parametrize("huge", [MAX_THREADS + 1, "99999999999", "9" * 5000])
def test_thread_counts_beyond_any_machine_are_one_sentence(huge):
    # bug caught: 99999999999 reached torch.set_num_threads and overflowed there (a traceback)
    assert parse_threads(MAX_THREADS) == MAX_THREADS
    with pytest.raises(MKEError, match=rf"^--threads must be at most {MAX_THREADS} threads \(this machine has "):
        parse_threads(huge)


@pytest.mark.parametrize("bad, says", [("²", "must be a whole number"), ("99999999999", "must be at most")])
def test_a_bad_environment_variable_is_one_sentence_naming_it(monkeypatch, bad, says):
    monkeypatch.setenv(ENV_VAR, bad)
    with pytest.raises(MKEError, match=f"^the environment variable {ENV_VAR} {says}"):
        choose_threads(small=True)
    result = CliRunner().invoke(theory_cli, SIMULATE)
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert result.output.startswith(f"Error: the environment variable {ENV_VAR} {says}"), result.output


def test_a_torchrun_local_world_size_in_other_digits_is_ignored(monkeypatch):
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "²")  # isdigit() took it, int() then failed
    assert choose_threads(small=False) == all_cores()


@pytest.mark.parametrize("value, says", [
    ("18446744073709551616,", "seed 18446744073709551616 is too large: torch takes seeds below 2**64"),
    ("0," + "9" * 5000, "is too large"), ("\u0663,", "ASCII digits"), ("1_0,", "ASCII digits"),
    ("1,+1", "distinct"), ("-1,", "distinct seeds >= 0")])
def test_seeds_torch_cannot_take_are_refused(value, says):
    # bug caught: --seeds 2**64, reached torch.manual_seed and overflowed (a traceback); int() took "٣" and "1_0"
    with pytest.raises(click.BadParameter, match=re.escape(says)):
        parse_seeds(None, None, value)
    assert list(parse_seeds(None, None, f"0,{2**64 - 1}")) == [0, 2**64 - 1]
    assert list(parse_seeds(None, None, " 3 , +4,")) == [3, 4]


def test_n_seeds_has_an_upper_bound():
    with pytest.raises(MKEError, match=f"--n-seeds must be at most {MAX_N_SEEDS}"):
        resolve_seeds(None, 10**11, bare="note", default_n=5)


def test_set_threads_applies_the_choice_to_torch():
    torch.set_num_threads(2)
    assert set_threads(small=is_small("mfeat")) == 1 and torch.get_num_threads() == 1
    assert set_threads(3) == 3 and torch.get_num_threads() == 3


# ---- the command-line tools apply the choice ----------------------------------------------------------------
SIMULATE = ["simulate", "--noise", "0.2", "--n-seeds", "1", "--steps", "1"]
RUN_MFEAT = ["run", "mfeat", "--epochs", "1", "--seeds", "0", "--methods", "teacher", "--device", "cpu"]


@pytest.mark.parametrize("cli, args", [(theory_cli, SIMULATE), (exp_cli, RUN_MFEAT)], ids=["mke-theory", "mke-exp"])
def test_the_clis_compute_small_models_on_one_thread_unless_told(cli, args):
    torch.set_num_threads(2)  # what torch would pick on two cores
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert torch.get_num_threads() == 1
    result = CliRunner().invoke(cli, [*args, "--threads", "3"])
    assert result.exit_code == 0, result.output
    assert torch.get_num_threads() == 3
    assert "thread" not in result.output  # nothing extra is printed


def test_mke_exp_gives_a_large_task_every_core():
    torch.set_num_threads(all_cores() + 1)  # anything but the expected count
    result = CliRunner().invoke(exp_cli, ["run", "vggsound"])  # fails for want of --data, after the choice
    assert result.exit_code == 1 and "needs --data" in result.output, result.output
    assert torch.get_num_threads() == all_cores()


def test_the_environment_variable_reaches_the_cli(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "2")
    result = CliRunner().invoke(theory_cli, SIMULATE)
    assert result.exit_code == 0, result.output
    assert torch.get_num_threads() == 2


@pytest.mark.parametrize("cli, command", [(theory_cli, "twomoon"), (theory_cli, "simulate"), (exp_cli, "run"),
                                          (exp_cli, "bench"), (exp_cli, "prepare")])
@pytest.mark.parametrize("bad", ["0", "-3", "two"])
def test_a_bad_thread_count_is_one_sentence_before_any_work(cli, command, bad):
    args = {"run": ["run", "mfeat"], "bench": ["bench", "mfeat"], "prepare": ["prepare", "ravdess", "--raw", ".",
                                                                              "--out", "x"]}.get(command, [command])
    result = CliRunner().invoke(cli, [*args, "--threads", bad])
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines() == [f"Error: --threads must be a whole number of threads >= 1, "
                                                  f"got '{bad}'"]
