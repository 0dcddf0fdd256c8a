"""`mke-theory`: clear one-sentence errors, tables on stdout, run records on disk, no torch for --help."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from mke_theory.cli import cli
from mke_theory.core.records import read_records

STUDENT_METHODS = ["um_student_noreg", "um_student", "mm_student_noreg", "mm_student"]
TWOMOON_METHODS = ["teacher", "um_student", "mm_student", "mm_supervised"]


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread):
    yield


def invoke(*args):
    return CliRunner().invoke(cli, list(args))


def assert_clean_failure(result, *mentions, exit_code=None):
    """Non-zero exit through SystemExit, one `Error:` line naming the problem, no traceback."""
    assert result.exit_code != 0, result.output
    if exit_code is not None:
        assert result.exit_code == exit_code, result.output
    assert isinstance(result.exception, SystemExit), result.exc_info
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    for text in mentions:
        assert text in errors[0], (text, errors[0])
    return errors[0]


def table_lines(output):
    """The rows of the first table: below its dashed rule, up to the first blank line."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line and set(line) == {"-"})
    rows = []
    for line in lines[start + 1:]:
        if not line.strip():
            break
        rows.append(line)
    return rows


# ---- bad options ---------------------------------------------------------------------------------


@pytest.mark.parametrize("args, mentions", [
    (["simulate", "--noise", "1.2"], ["--noise", "[0, 1]", "1.2"]),
    (["simulate", "--noise", "0.1,-0.2"], ["--noise", "[0, 1]"]),
    (["simulate", "--noise", "nan"], ["--noise", "[0, 1]"]),
    (["simulate", "--noise", "a,b"], ["--noise", "'a,b'", "comma-separated"]),
    (["simulate", "--noise", ","], ["--noise", "at least one rate"]),
    (["simulate", "--n-seeds", "0"], ["--n-seeds", "0", ">=1"]),
    (["simulate", "--seeds", "a,b"], ["--seeds", "comma-separated"]),
    (["simulate", "--seeds", "1,1"], ["--seeds", "distinct"]),
    (["simulate", "--steps", "0"], ["--steps"]),
    (["simulate", "--data-seed", "-1"], ["--data-seed", ">=0"]),
    (["simulate", "--generator", "nope"], ["--generator", "'nope'", "'twomoon'", "'gaussian'", "'shared-specific'"]),
    (["simulate", "--noise-model", "uniform"], ["--noise-model", "'symmetric'", "'structured'"]),
    (["twomoon", "--n-seeds", "0"], ["--n-seeds", ">=1"]),
    (["twomoon", "--regularizer", "noise"], ["--regularizer", "'input_noise'"]),
], ids=lambda v: " ".join(v) if isinstance(v, list) and v[0] in ("simulate", "twomoon") else None)
def test_bad_option_fails_with_one_clear_sentence(args, mentions):
    assert_clean_failure(invoke(*args), *mentions, exit_code=2)


@pytest.mark.parametrize("args, mentions", [
    # a bare integer used to be a count: refused with what to write, never silently one seed
    (["twomoon", "--seeds", "5"], ["--seeds is a list of seeds", "--n-seeds 5", "--seeds 5,"]),
    (["simulate", "--seeds", "3"], ["--seeds is a list of seeds", "--n-seeds 3"]),
    (["twomoon", "--seeds", "3,14", "--n-seeds", "2"], ["not both"]),
    (["simulate", "--seeds", "1,2"], ["0, 1, ..., N−1", "--n-seeds"]),
], ids=["twomoon-bare", "simulate-bare", "both", "simulate-not-a-prefix"])
def test_seeds_is_a_list_and_a_bare_count_is_refused(args, mentions):
    assert_clean_failure(invoke(*args, "--steps" if args[0] == "simulate" else "--no-figure",
                                *(["1"] if args[0] == "simulate" else [])), *mentions, exit_code=1)


def test_twomoon_seeds_list_trains_those_seeds_and_n_seeds_the_notebook_stream(monkeypatch):
    import mke_theory.toy.twomoon as twomoon

    seen = []

    def fake_run(cfg, progress=None):
        seen.append(cfg.student_seeds)
        raise SystemExit(0)

    monkeypatch.setattr(twomoon, "run_twomoon", fake_run)
    assert invoke("twomoon", "--seeds", "3,14", "--no-figure").exit_code == 0
    assert invoke("twomoon", "--seeds", "7,", "--no-figure").exit_code == 0
    assert invoke("twomoon", "--n-seeds", "3", "--no-figure").exit_code == 0
    assert invoke("twomoon", "--no-figure").exit_code == 0
    assert seen == [[3, 14], [7], twomoon.official_seeds(3), twomoon.official_seeds(10)]


def test_repeated_noise_rate_fails_before_training():
    error = assert_clean_failure(invoke("simulate", "--noise", "0.3,0.3", "--n-seeds", "1", "--steps", "1"),
                                 "noise", "repeat", exit_code=1)
    assert "0.3" in error


def test_bad_option_in_a_real_process_prints_no_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "mke_theory.cli", "simulate", "--noise", "1.2"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    assert "[0, 1]" in result.stderr


# ---- twomoon -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def twomoon_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("twomoon") / "runs"
    result = invoke("twomoon", "--n-seeds", "2", "--no-figure", "--out", str(out))
    return result, out


def test_twomoon_prints_the_method_table(twomoon_run):
    result, _ = twomoon_run
    assert result.exit_code == 0, result.output
    rows = table_lines(result.stdout)
    assert [line.split()[0] for line in rows] == TWOMOON_METHODS
    assert [int(line.split()[1]) for line in rows] == [1, 2, 2, 2]  # one teacher, two student seeds


def test_twomoon_writes_readable_records(twomoon_run):
    result, out = twomoon_run
    records = read_records(out)
    assert sorted({r["method"] for r in records}) == sorted(TWOMOON_METHODS)
    assert len(records) == 1 + 3 * 2
    assert {r["task"] for r in records} == {"twomoon"}
    assert "wrote 7 run records" in result.output
    # the table's mean is the mean of the records
    accuracy = {m: np.mean([r["metrics"]["test_accuracy"] for r in records if r["method"] == m])
                for m in TWOMOON_METHODS}
    for line in table_lines(result.stdout):
        method, _, mean = line.split()[:3]
        assert float(mean) == pytest.approx(100 * accuracy[method], abs=0.006)


def test_twomoon_never_overwrites_without_force(twomoon_run, tmp_path):
    _, first = twomoon_run
    out = tmp_path / "runs"
    shutil.copytree(first, out)
    before = {p.name: p.read_text() for p in out.iterdir()}

    again = invoke("twomoon", "--n-seeds", "2", "--no-figure", "--out", str(out))
    assert again.exit_code == 0, again.output  # resumes like mke-exp run: existing records are kept
    assert "wrote 0 run records" in again.output and "kept 7 existing record(s)" in again.output
    assert {p.name: p.read_text() for p in out.iterdir()} == before

    forced = invoke("twomoon", "--n-seeds", "2", "--no-figure", "--out", str(out), "--force")
    assert forced.exit_code == 0, forced.output
    assert sorted(p.name for p in out.iterdir()) == sorted(before)
    metrics = lambda folder: sorted((r["method"], r["seed"], r["metrics"]["test_accuracy"])  # noqa: E731
                                    for r in read_records(folder))
    assert metrics(out) == metrics(first)  # same seeds, same numbers


def test_twomoon_with_some_records_present_writes_only_the_missing_ones(twomoon_run, tmp_path):
    _, first = twomoon_run
    out = tmp_path / "runs"
    shutil.copytree(first, out)
    files = sorted(out.iterdir())
    kept, removed = files[0], files[1:]
    kept.write_text(kept.read_text())  # the one record present; its bytes must stay
    before = kept.read_bytes()
    for path in removed:
        path.unlink()
    again = invoke("twomoon", "--n-seeds", "2", "--no-figure", "--out", str(out))
    assert again.exit_code == 0, again.output
    assert f"wrote {len(removed)} run records" in again.output and "kept 1 existing record(s)" in again.output
    assert kept.read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in files)


# ---- simulate ------------------------------------------------------------------------------------


def test_simulate_prints_one_row_per_eta_and_method_and_writes_records(tmp_path):
    out = tmp_path / "sim"
    result = invoke("simulate", "--noise", "0.1,0.3", "--n-seeds", "2", "--steps", "200", "--out", str(out))
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in table_lines(result.stdout)]
    assert sorted((float(r[0]), r[2]) for r in rows) == sorted((eta, m) for eta in (0.1, 0.3) for m in STUDENT_METHODS)

    records = read_records(out)
    assert len(records) == 2 * (1 + len(STUDENT_METHODS) * 2)
    assert sorted({r["method"] for r in records}) == sorted(["teacher", *STUDENT_METHODS])
    assert {r["task"] for r in records} == {"simulate"}
    assert {r["variant"] for r in records} == {"eta=0.1", "eta=0.3"}
    # the printed test error is the mean over the records of that cell
    for r in rows:
        eta, method, printed = float(r[0]), r[2], float(r[3])
        cell = [x["metrics"]["test_error"] for x in records if x["method"] == method and x["config"]["eta"] == eta]
        assert len(cell) == 2
        assert printed == pytest.approx(100 * np.mean(cell), abs=0.051)


def test_simulate_reports_the_theory_per_eta_and_plots_it(tmp_path):
    figure = tmp_path / "sweep.png"
    result = invoke("simulate", "--noise", "0.1,0.3", "--n-seeds", "1", "--steps", "50", "--plot", str(figure))
    assert result.exit_code == 0, result.output
    theory = result.stdout.split("Theory (Wei et al. 2021, Thm 4.3, by mke-theory check")[1]
    rows = table_lines(theory)
    assert [float(r.split()[0]) for r in rows] == [0.1, 0.3]
    records = {r["config"]["eta"]: r["metrics"] for r in _simulate_teacher_rows()}
    for r in rows:
        eta, um_mu, mm_mu = float(r.split()[0]), float(r.split()[2]), float(r.split()[5])
        assert um_mu == pytest.approx(records[eta]["um_mu"], abs=5e-4)
        assert mm_mu == pytest.approx(records[eta]["mm_mu"], abs=5e-4)
    assert figure.stat().st_size > 0


def _simulate_teacher_rows():
    from mke_theory.toy.simulate import SimulateConfig, simulate

    rows = simulate(SimulateConfig(noise=(0.1, 0.3), n_seeds=1, steps=1))
    return [r for r in rows if r["method"] == "teacher"]


def test_simulate_without_out_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("simulate", "--noise", "0.2", "--n-seeds", "1", "--steps", "5")
    assert result.exit_code == 0, result.output
    assert len(table_lines(result.stdout)) == len(STUDENT_METHODS)
    assert os.listdir(tmp_path) == []


# ---- progress when stderr is not a terminal ------------------------------------------------------


def test_progress_lines_every_interval_with_rate_and_eta_not_per_step():
    import io

    from mke_theory.console import progress_bar

    now = [0]  # ms
    out = io.StringIO()  # not a terminal: click's bar would print nothing useful here
    with progress_bar(5000, "training", file=out, interval=5.0, clock=lambda: now[0] / 1000) as update:
        for _ in range(5000):
            now[0] += 4  # 250 steps/s, 20 s in all
            update(1)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 + 1  # at 5, 10 and 15 s (not 5000 lines), then the last line
    assert lines[0] == "training: 1250/5000 steps (25 %), 250 steps/s, ETA 15 s"
    assert lines[-1] == "training: 5000/5000 steps done in 20 s"


def test_twomoon_prints_progress_lines_into_a_log(monkeypatch):
    import mke_theory.console as console
    import mke_theory.toy.twomoon as twomoon

    def fake_run(cfg, progress=None):
        for _ in range(10):
            progress(1)
        raise SystemExit(0)

    monkeypatch.setattr(twomoon, "run_twomoon", fake_run)
    monkeypatch.setattr(console, "PROGRESS_INTERVAL_S", 0.0)
    result = CliRunner().invoke(cli, ["twomoon", "--n-seeds", "1", "--no-figure"])
    progress = [line for line in result.stderr.splitlines() if line.startswith("training teacher and students: ")]
    assert len(progress) >= 10 and "steps/s" in progress[0] and "/" in progress[0], result.stderr
