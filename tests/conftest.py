"""Fixtures shared by every test module."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

_HOLD_LOCK = """
import sys
from mke_theory.core.disk import FolderLock
with FolderLock(sys.argv[1], "test holder"):
    print("held", flush=True)
    sys.stdin.readline()
"""


@pytest.fixture
def holder():
    """``holder(lock_file, *args)``: another process (its command line ends in ``args``) holding
    ``FolderLock(lock_file)`` until a line arrives on its stdin; killed at the end of the test if it still runs."""
    procs = []
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).resolve().parents[1]))

    def start(path, *args):
        p = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(path), *args], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, env=env)
        procs.append(p)
        assert p.stdout.readline() == "held\n"
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Tiny networks on tiny data: on a shared two-core machine torch's intra-op threads only add
    contention (measured: the leakage canaries took 8 min with the default threads, 42 s with one)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def back_to_one_thread(one_torch_thread):
    """A CLI called in-process sets torch's threads for its task (every core for the image and audio
    tasks, ``mke_theory.console``); the next test starts on one thread again."""
    yield
    import torch

    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)


# The slow end-to-end tests, marked `integration`: process pools and killed or concurrent runs, torchrun, the smoke
# run of every task, CLIs and scripts in subprocesses, the leakage canaries. `make test` (CI) runs them with the
# rest; `make test-fast` (-m "... and not integration") leaves them out. An entry is a module (all its tests) or
# module::test (every parametrisation of it). Chosen from `pytest --durations=0`; when a new test belongs here:
# docs/contributing.md. tests/test_test_subsets.py checks that every entry still names a test.
INTEGRATION = frozenset({
    "tests/experiments/test_leakage.py",  # the leakage canaries: every task trained twice
    "tests/experiments/test_own_teacher_doc.py",  # the worked example of docs/own_teacher.md
    "tests/figures/test_paper_figures.py",  # TwoMoon trained, every script in a subprocess
    "tests/experiments/test_experiments.py::test_every_registered_task_runs_end_to_end",  # the smoke run of each task
    "tests/experiments/test_experiments.py::test_two_process_ddp_run_on_gloo",
    "tests/experiments/test_experiments.py::test_bad_bundles_end_in_one_sentence_and_keep_existing_records",
    "tests/experiments/test_experiments.py::test_ravdess_prepare_and_run_from_the_command_line",
    "tests/experiments/test_experiments.py::test_prepare_settings_come_from_the_cache_and_a_contradiction_is_an_error",
    "tests/experiments/test_experiments.py::test_fit_mke_from_python_returns_the_student",
    "tests/experiments/test_sound_tasks.py::test_prepare_and_run_both_protocols_from_the_command_line",
    "tests/experiments/test_streaming.py::test_bench_on_a_prepared_cache_times_the_tasks_loader_and_the_step_it_feeds",
    "tests/experiments/test_streaming.py::test_a_cache_backed_run_trains_under_torchrun_with_loader_workers",
    "tests/experiments/test_resume.py::test_three_concurrent_runs_into_one_folder_all_succeed_with_the_single_runs_records",
    "tests/experiments/test_nyudv2_task.py::test_prepare_then_run_writes_records_examples_and_the_figure",
    "tests/experiments/test_nyudv2_task.py::test_soft_per_pixel_pseudo_labels",
    "tests/experiments/test_cache.py::test_a_killed_ravdess_prepare_continues_to_the_same_cache",
    "tests/experiments/test_cache.py::test_ravdess_with_two_workers_equals_one",
    "tests/experiments/test_identity.py::test_a_run_on_a_cache_of_swapped_files_trains_instead_of_resuming_the_first_caches_records",
    "tests/experiments/test_streaming.py::test_a_lazy_split_trains_the_records_of_the_same_split_in_memory",
    "tests/experiments/test_ravdess_data.py::test_rerun_reuses_the_cache_and_other_parameters_rebuild",
    "tests/experiments/test_ravdess_data.py::test_a_version_1_cache_is_named_and_rebuilt",
    "tests/experiments/test_ravdess_data.py::test_a_corrupt_cache_is_rebuilt_not_reused",
    "tests/experiments/test_realdata_ravdess.py::test_the_seeking_reader_gives_the_frames_opencv_decodes_sequentially",
    "tests/experiments/test_train.py::test_training_imports_neither_scikit_learn_nor_torch_dynamo",
    "tests/theory/test_cli.py::test_simulate_reports_the_theory_per_eta_and_plots_it",
    "tests/theory/test_diagnose.py::test_cli_bad_npz_ends_in_one_sentence",
    "tests/theory/test_plots.py::test_scripts_write_png_and_pdf",
    "tests/test_moved.py::test_an_old_name_is_the_new_module_and_warns",
    "tests/test_threads.py::test_the_clis_compute_small_models_on_one_thread_unless_told",
    "tests/test_threads.py::test_the_environment_variable_reaches_the_cli",
    "tests/figures/test_figures_summary.py::test_make_figures_without_real_data_names_the_commands_and_exits_0",
    "tests/test_gpu_check.py::test_the_dry_run_exercises_every_stage_and_writes_one_json",  # 11 subprocesses, ~60 s
})


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(config, items):
    for item in items:
        test = item.nodeid.split("[")[0]
        if test in INTEGRATION or test.split("::")[0] in INTEGRATION:
            item.add_marker(pytest.mark.integration)
