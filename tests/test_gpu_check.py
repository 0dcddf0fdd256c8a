"""benchmarks/gpu_check.sh: its CPU dry run (every stage, the JSON a GPU run writes), a hung stage killed with its
children at its timeout, and stages skipped, not started, once the budget is spent."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/status") as f:  # a zombie left to init is dead too
        return "zombie" not in f.read()


def test_the_dry_run_exercises_every_stage_and_writes_one_json(tmp_path, gpu_check):
    out = tmp_path / "check.json"
    result = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--dry-run", str(out)],
                            capture_output=True, text=True, env=dict(os.environ, PYTHON=sys.executable))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert (report["schema"], report["mode"], report["ok"]) == (1, "dry-run", True)
    env = report["environment"]
    assert env["device"] == "CPU" and env["torch"] and "cuda" in env and "git_commit" in env
    presets = list(gpu_check.PRESETS)
    assert [s["name"] for s in report["stages"]] == (["environment", "gpu_tests"] + [f"cache:{p}" for p in presets]
                                                     + [f"bench:{p}" for p in presets]
                                                     + [f"compile:{p}" for p in presets])
    assert all(s["status"] == "ok" and 0 < s["timeout_s"] <= report["budget_s"] for s in report["stages"])
    assert "--collect-only" in report["stages"][1]["command"] and "gpu" in report["stages"][1]["command"]
    for name in presets:
        p = report["presets"][name]
        assert p["cache_bytes"] > 0
        bench, compiled = p["bench"], p["compile"]
        assert {"fp32 eager", "bf16 autocast", "loader + fp32 step (CPU)"} <= set(bench)
        assert any(v.startswith("data loader alone") for v in bench)
        assert 0 <= bench["loader + fp32 step (CPU)"]["waiting_fraction"] <= 1
        fp32 = bench["fp32 eager"]
        assert fp32["step_s"] > 0 and fp32["peak_rss_bytes"] > 0 and fp32["parameters"] > 0
        assert fp32["peak_gpu_bytes"] is None  # the CPU: no GPU figure is made up
        assert compiled["bf16 + torch.compile"]["compile_backend"] == "eager"
    assert report["presets"]["nyudv2-paper"]["bench"]["fp32 eager"]["parameters"] > 2 * 11e6  # two ResNet streams


def test_a_hung_stage_is_killed_with_its_children_at_its_timeout(tmp_path, gpu_check):
    """The stage's own child (a loader worker, say) holds no pipe and would outlive a kill of the stage alone."""
    pid_file = tmp_path / "child.pid"
    script = ("import subprocess, sys, time; "
              f"c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'], "
              "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
              f"open({str(pid_file)!r}, 'w').write(str(c.pid)); print('started', flush=True); time.sleep(600)")
    result = gpu_check.run_stage("hung", [sys.executable, "-c", script], timeout_s=3)
    child = int(pid_file.read_text())
    try:
        assert result["status"] == "timeout" and "started" in result["output_tail"]
        for _ in range(50):  # SIGKILL is delivered asynchronously
            if not _alive(child):
                break
            time.sleep(0.1)
        assert not _alive(child)
    finally:
        if _alive(child):
            os.kill(child, 9)


def test_a_failing_stage_is_recorded_and_the_budget_skips_stages_instead_of_starting_them(tmp_path, gpu_check):
    failed = gpu_check.run_stage("fails", [sys.executable, "-c", "raise SystemExit(3)"], timeout_s=30)
    assert (failed["status"], failed["returncode"]) == ("failed", 3)
    out = tmp_path / "sub" / "check.json"
    report = gpu_check.check(dry=True, out_path=out, budget_s=0)
    assert json.loads(out.read_text()) == report and report["ok"] is False
    assert {s["status"] for s in report["stages"]} == {"skipped"}
    assert any("budget" in s["output_tail"] for s in report["stages"])


def test_a_variant_out_of_gpu_memory_is_a_row_with_the_error_and_the_others_still_run(monkeypatch):
    """NYU's preset at 480×640, batch 8, fits an 80 GB GPU in bf16 only (estimated): fp32 must not end the bench."""
    import torch

    from mke_experiments import bench as B
    from mke_experiments.config import resolve_config
    from mke_experiments.tasks import get_task

    real, calls = B._timed, []

    def fp32_runs_out(step, batch, steps, device):
        calls.append(1)
        if len(calls) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(step, batch, steps, device)

    monkeypatch.setattr(B, "_timed", fp32_runs_out)
    rows = B.bench("mfeat", resolve_config(get_task("mfeat")), batch_size=4, steps=1, device="cpu")
    assert rows[0]["variant"] == "fp32 eager" and "out of memory" in rows[0]["error"]
    assert rows[0]["step_s"] != rows[0]["step_s"]  # NaN, not a number made up
    assert rows[1]["variant"] == "bf16 autocast" and rows[1]["step_s"] > 0 and "error" not in rows[1]
