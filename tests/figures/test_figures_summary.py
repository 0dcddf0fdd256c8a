"""The summary that ends `make figures`: one line per output (made / reused / skipped / failed) and an exit status
that is 0 only when every skipped output needs real data the user does not have."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from mke_theory.core.records import make_record, write_record

ROOT = Path(__file__).resolve().parents[2]
SUMMARY = ROOT / "paper_figures" / "summary.py"
REALDATA = ("table_ravdess.md", "table_nyudv2.md", "table_vggsound.md", "table_audioset-vggsound.md")


def _summary(*args, **kw):
    return subprocess.run([sys.executable, str(SUMMARY), *map(str, args)], capture_output=True, text=True,
                          timeout=120, **kw)


def _status(folder, name, state, reason="", command="", needs_data=False):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(dict(state=state, reason=reason, command=command,
                                                         needs_data=needs_data)))


def _lines(stdout):
    """output name -> its line"""
    return {line.split()[1]: line for line in stdout.splitlines() if line.startswith("  ")}


@pytest.fixture
def out(tmp_path):
    """A FIG folder after a run: two outputs made now, one reused from an earlier run (its outcome recorded
    before this run started), and a real-data table skipped."""
    out, status = tmp_path / "fig", tmp_path / "fig" / ".status"
    for name in ("a.png", "b.md", "old.md"):
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text("x")
    _status(status, "old.md", "made")
    os.utime(status / "old.md.json", (1000, 1000))  # an earlier run's
    _status(status, "a.png", "made")
    _status(status, "b.md", "made")
    _status(status, "table_ravdess.md", "skipped", "no records of ravdess in runs/ravdess (they need the real data)",
            "mke-exp prepare ravdess --raw DOWNLOAD --out CACHE && mke-exp run ravdess --data CACHE --out runs/ravdess",
            needs_data=True)
    return out


def test_made_reused_and_skipped_for_data_exit_0(out):
    done = _summary("show", "--out", out, "--since", 2000, "a.png", "b.md", "old.md", "table_ravdess.md")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = _lines(done.stdout)
    assert list(lines) == ["a.png", "b.md", "old.md", "table_ravdess.md"]  # one line each, in FIGURES' order
    assert lines["a.png"].split() == ["made", "a.png"]
    assert lines["old.md"].split()[0] == "reused" and "(up to date)" in lines["old.md"]
    skipped = lines["table_ravdess.md"]
    assert skipped.split()[0] == "skipped"
    assert "no records of ravdess in runs/ravdess (they need the real data)" in skipped
    assert "make them with: mke-exp prepare ravdess --raw DOWNLOAD --out CACHE && mke-exp run ravdess" in skipped
    assert "2 made, 1 reused, 1 skipped (need real data), 0 failed" in done.stdout


def test_a_failure_or_a_skip_make_should_not_have_made_exits_non_zero(out):
    status = out / ".status"
    _status(status, "c.png", "failed", "noise_sweep.py exited with status 1: Error: two sweeps in one folder")
    done = _summary("show", "--out", out, "--since", 2000, "a.png", "c.png", "table_ravdess.md")
    assert done.returncode == 1
    assert _lines(done.stdout)["c.png"].split()[:2] == ["failed", "c.png"]
    assert "Error: two sweeps in one folder" in done.stdout and "make figures failed: c.png" in done.stderr
    assert "1 made, 0 reused, 1 skipped, 1 failed" in done.stdout  # no "(need real data)" when it fails
    # TwoMoon records missing after make's own rule ran: not data the user lacks, so not a success
    _status(status, "twomoon_table.md", "skipped", "no records of twomoon in runs/twomoon",
            "mke-theory twomoon --out runs/twomoon")
    done = _summary("show", "--out", out, "--since", 2000, "a.png", "twomoon_table.md")
    assert done.returncode == 1 and "make figures failed: twomoon_table.md" in done.stderr
    assert "make them with: mke-theory twomoon --out runs/twomoon" in _lines(done.stdout)["twomoon_table.md"]
    # an output neither made now nor there: its rule never ran
    done = _summary("show", "--out", out, "--since", 2000, "a.png", "never.png")
    assert done.returncode == 1 and _lines(done.stdout)["never.png"].split()[0] == "failed"
    # said made but not there
    _status(status, "gone.png", "made")
    done = _summary("show", "--out", out, "--since", 2000, "gone.png")
    assert done.returncode == 1 and "is not there" in done.stdout


def test_run_records_a_crash_with_the_scripts_last_words(tmp_path):
    status = tmp_path / "st" / "x.png.json"
    crash = tmp_path / "crash.py"
    crash.write_text("import sys\nprint('working')\nraise ValueError('the sweep has one noise level')\n")
    done = _summary("run", status, "--", sys.executable, crash)
    assert done.returncode == 1 and "working" in done.stdout and "Traceback" in done.stderr  # passed through
    recorded = json.loads(status.read_text())
    assert recorded["state"] == "failed"
    assert recorded["reason"] == "crash.py exited with status 1: ValueError: the sweep has one noise level"
    # exit 0 without a word: neither made nor skipped is a failure too
    quiet = tmp_path / "quiet.py"
    quiet.write_text("pass\n")
    done = _summary("run", status, "--", sys.executable, quiet)
    assert done.returncode == 1 and json.loads(status.read_text())["state"] == "failed"


@pytest.mark.skipif(shutil.which("make") is None or not (ROOT / ".venv" / ".installed").exists(),
                    reason="needs make and the Makefile's virtual environment")
def test_make_figures_without_real_data_names_the_commands_and_exits_0(tmp_path):
    """The real Makefile and scripts, on small CPU records (the experiments' rules marked done) and no real data;
    one output of each kind of rule (FIGURES overridden: all eleven take minutes here, `make figures` by hand)."""
    from mke_theory.cli import cli

    runs, fig = tmp_path / "runs", tmp_path / "fig"
    result = CliRunner().invoke(cli, ["twomoon", "--n-seeds", "2", "--no-figure", "--out", str(runs / "twomoon")])
    assert result.exit_code == 0, result.output
    for method, accs in {"teacher": (0.6, 0.62), "um_student": (0.64, 0.65), "mm_student": (0.7, 0.71)}.items():
        for seed, acc in enumerate(accs):
            write_record(make_record("mfeat", method, seed, {"test_accuracy": acc}, {"epochs": 1}, 1.0), runs / "mfeat")
    for task in ("twomoon", "mfeat"):
        (runs / task / ".done").touch()
    figures = ["twomoon_table.md", "nyudv2_figure.png", "table_mfeat.md", "table_ravdess.md",
               "table_audioset-vggsound.md"]
    # -o: never reinstall the environment from here, whatever pyproject.toml's time stamp
    make = ["make", "-o", ".venv/.installed", "-j2", "figures", f"RUNS={runs}", f"FIG={fig}",
            f"FIGURES={' '.join(figures)}"]

    done = subprocess.run(make, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = _lines(done.stdout[done.stdout.index("make figures: 5 outputs"):])
    assert list(lines) == figures
    assert lines["twomoon_table.md"].split() == ["made", "twomoon_table.md"]
    assert lines["table_mfeat.md"].split() == ["made", "table_mfeat.md"]
    assert "make them with: mke-exp prepare nyudv2 --raw nyu_depth_v2_labeled.mat --out CACHE && " \
           f"mke-exp run nyudv2 --data CACHE --out {runs / 'nyudv2'}" in lines["nyudv2_figure.png"]
    for name in ("table_ravdess.md", "table_audioset-vggsound.md"):
        task = name[len("table_"):-len(".md")]
        assert lines[name].split()[0] == "skipped", lines[name]
        assert f"no records of {task} in {runs / task} (they need the real data)" in lines[name]
        assert f"mke-exp prepare {task} --raw DOWNLOAD --out CACHE && " in lines[name]
        assert f"mke-exp run {task} --data CACHE" in lines[name] and f"--out {runs / task}" in lines[name]
    assert "--set data.audioset=AUDIOSET_CACHE" in lines["table_audioset-vggsound.md"]
    assert "2 made, 0 reused, 3 skipped (need real data), 0 failed" in done.stdout

    time.sleep(1.1)  # the next run starts in a later second than these outcomes
    again = subprocess.run(make, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    lines = _lines(again.stdout[again.stdout.index("make figures: 5 outputs"):])
    assert lines["twomoon_table.md"].split()[0] == "reused"  # up to date: make ran nothing for it
    assert lines["table_mfeat.md"].split()[0] == "made"  # tables always redraw from the records
    assert "1 made, 1 reused, 3 skipped (need real data), 0 failed" in again.stdout

    (runs / "mfeat" / "broken.json").write_text("{ not json")  # a script error: the others still run, exit 1
    time.sleep(1.1)
    broken = subprocess.run(make, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert broken.returncode != 0
    lines = _lines(broken.stdout[broken.stdout.index("make figures: 5 outputs"):])
    assert lines["table_mfeat.md"].split()[0] == "failed" and "broken.json" in lines["table_mfeat.md"]
    assert lines["table_ravdess.md"].split()[0] == "skipped"
