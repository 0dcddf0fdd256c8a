"""The GPU check (``benchmarks/gpu_check.sh``): the ``gpu`` tests and ``mke-exp bench`` of every preset's network at
its real shapes, on synthetic caches, in at most 8 minutes, into ONE JSON file.

    benchmarks/gpu_check.sh [--dry-run] [OUT.json]        # default: $OUT/gpu_check.json, else ./gpu_check.json

Stages, each a subprocess in its own session with its own timeout (a hung stage is killed with its loader workers
and costs only its own time), all within one budget (``BUDGET_S``; a stage that would start with too little of it
left is recorded as skipped):

1. ``environment``: the device's name, torch, CUDA and cuDNN versions, the git commit;
2. ``gpu_tests``: ``pytest -m gpu tests/``;
3. ``cache:<preset>``: a cache in the real format at the preset's prepare settings, made by the task's own prepare
   from synthetic raw files (``mke_experiments.testing``: a v7.3 NYU file of 640×480 images, RAVDESS-named mp4s and
   wavs, VGGSound-named mp4s with ``vggsound.csv``);
4. ``bench:<preset>``: ``mke-exp bench TASK --data CACHE`` at the preset's batch size: fp32, bf16, bf16 +
   channels_last, the loader alone and feeding the bf16 step, the waiting fraction, peak GPU memory;
5. ``compile:<preset>``: ``mke-exp bench TASK --compile`` (shapes from the preset, no loader): last, because
   compiling is the slowest and least predictable stage.

``--dry-run``: the same stages and the same JSON on the CPU, at tiny shapes and 1 step, ResNet-18 in place of
ResNet-101, ``pytest --collect-only`` in place of running the gpu tests, and torch.compile with the ``eager`` backend
(dynamo traces the step; no code is generated, which on a CPU takes minutes); for the tests, in about a minute.
Exit status 0 when every stage passed, 1 otherwise; the JSON is written either way.

Each preset is read as ``mke-exp bench --config PRESET`` reads it (``mke_experiments/configs/``), with the few
``--set`` settings of ``PRESETS`` on top: the synthetic data's needs, and in the dry run its tiny shapes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = 1
BUDGET_S = 460  # of the 8 minutes: the rest covers starting Python and writing the JSON
MIN_STAGE_S = 10  # a stage is skipped rather than started with less budget than this left
TAIL = 3000  # characters of a stage's output kept in the JSON

# preset (mke_experiments/configs/NAME.yaml) -> --set settings on top of it: ``sets`` in both modes (what the
# synthetic data need: the RAVDESS fixture has 3 train actors), ``dry`` in the dry run only (tiny shapes, ResNet-18)
PRESETS = {
    "nyudv2-paper": dict(sets=(), dry=("model.backbone=resnet18", "prepare.size=32,48", "data.crop=32,32")),
    "ravdess-mfh": dict(sets=("data.labeled_actors=1",),
                        dry=("prepare.frames=2", "prepare.size=24", "prepare.n_mels=16", "model.width=4",
                             "model.hidden=16")),
    "vggsound-mfh": dict(sets=(), dry=("prepare.frames=2", "prepare.size=24", "prepare.n_mels=16",
                                       "prepare.seconds=0.5", "data.time_mask=5")),
}

# seconds per stage on a GPU, and in the dry run; the sum of the GPU column stays within BUDGET_S with the compile
# stages sharing what is left
TIMEOUTS = {"environment": (60, 60), "gpu_tests": (90, 60), "cache": (60, 40), "bench": (120, 40),
            "compile": (180, 40)}
GPU_STEPS = 5  # timed steps per variant on the GPU (after 3 warm-up steps): NYU's step at 480×640 is the longest


def python() -> str:
    return sys.executable


def settings(name: str, dry: bool) -> tuple[str, ...]:
    """The --set settings on top of the preset (with the dry run's tiny ones under ``dry``)."""
    return PRESETS[name]["sets"] + (PRESETS[name]["dry"] if dry else ())


def task_of(name: str) -> str:
    from mke_experiments.config_files import read_config

    return read_config(name)[1]["task"]


def resolved(name: str, dry: bool):
    """The preset's configuration with ``settings`` applied, as ``mke-exp bench --config NAME --set ...`` has it."""
    from mke_experiments.config import resolve_config
    from mke_experiments.config_files import config_settings
    from mke_experiments.tasks import get_task

    task = task_of(name)
    return resolve_config(get_task(task), config_settings(name, task) + settings(name, dry))


def config_args(name: str, dry: bool) -> list[str]:
    """``mke-exp bench`` arguments naming the preset's configuration: ``--config NAME`` and the --set settings (a
    prepare setting only shapes the cache, which bench reads its shapes from)."""
    return ["--config", name] + [arg for item in settings(name, dry) if not item.startswith("prepare.")
                                 for arg in ("--set", item)]


# --- the stages' own work, each run in a child process (``python gpu_check.py _stage ...``) ---

def environment() -> dict:
    """What ran the check: the device's name, torch, CUDA and cuDNN versions, the machine, the git commit."""
    import torch

    cuda = torch.cuda.is_available()
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    return dict(device=torch.cuda.get_device_name() if cuda else "CPU", cuda_available=cuda,
                device_memory_bytes=torch.cuda.get_device_properties(0).total_memory if cuda else None,
                torch=torch.__version__, cuda=torch.version.cuda,
                cudnn=torch.backends.cudnn.version() if cuda else None,
                python=platform.python_version(), machine=platform.machine(), cpus=os.cpu_count(),
                git_commit=commit or None)


def make_cache(name: str, folder: Path, dry: bool) -> dict:
    """A cache of the preset's task at its prepare settings, by the task's own prepare, from synthetic raw files."""
    from mke_experiments.tasks import get_task

    kind, cfg = task_of(name), resolved(name, dry)
    task = get_task(kind)
    raw = folder / "raw"
    if kind == "nyudv2":
        from mke_experiments.data import nyudv2 as nyu
        from mke_experiments.testing.nyudv2 import make_labeled_mat, small_split

        h, w = (48, 64) if dry else (480, 640)  # NYU's images are 480 × 640; prepare resizes them to prepare.size
        raw.mkdir(parents=True)
        n = 8 if dry else 24
        mat = make_labeled_mat(raw / "nyu_depth_v2_labeled.mat", n=n, width=w, height=h)
        p = cfg.prepare
        nyu.prepare(mat, folder / "cache", size=tuple(map(int, p.size.split(","))), val=1,
                    labeled_fraction=p.labeled_fraction, split_seed=p.split_seed, hha=p.hha,
                    split=small_split(n), workers=1)
    elif kind == "ravdess":
        from mke_experiments.testing.ravdess import make_ravdess_tree

        make_ravdess_tree(raw, actors=(1, 5, 9, 10, 11), emotions=range(1, 9), seconds=0.5 if dry else 3.0)
        task.prepare(raw, folder / "cache", cfg.prepare, workers=1)
    else:
        from mke_experiments.testing.sound_tasks import vggsound_download

        vggsound_download(raw, per_class=4 if dry else 8, test_per_class=2, missing=0)
        task.prepare(raw, folder / "cache", cfg.prepare, workers=1)
    files = [f for f in (folder / "cache").rglob("*") if f.is_file()]
    return dict(cache=str(folder / "cache"), cache_bytes=sum(f.stat().st_size for f in files))


# --- the driver ---

def run_stage(name: str, argv: list[str], timeout_s: float, env: dict | None = None) -> dict:
    """Run ``argv`` in its own session; on timeout kill the whole session (loader workers included)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, env=dict(os.environ, **(env or {})))
    try:
        output, _ = proc.communicate(timeout=timeout_s)
        status = "ok" if proc.returncode == 0 else "failed"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        status = "timeout"
    return dict(name=name, status=status, seconds=round(time.perf_counter() - t0, 2), timeout_s=round(timeout_s, 1),
                returncode=proc.returncode, command=argv, output_tail=(output or "")[-TAIL:])


def _bench_argv(name: str, dry: bool, out: Path, data: Path | None, compiled: bool) -> list[str]:
    """``mke-exp bench`` of the preset at its training batch size (train.batch_size; 2 in the dry run)."""
    batch = 2 if dry else resolved(name, dry).train.batch_size
    argv = [python(), "-m", "mke_experiments", "bench", task_of(name), *config_args(name, dry),
            "--batch-size", str(batch), "--steps", "1" if dry else str(GPU_STEPS),
            "--device", "cpu" if dry else "cuda", "--json", str(out)]
    if data is not None:
        argv += ["--data", str(data)]
    if compiled:
        argv.append("--compile")
    return argv


FIGURES = ("step_s", "samples_per_s", "peak_gpu_bytes", "peak_rss_bytes", "rss_start_bytes", "waiting_fraction",
           "parameters", "compile_backend", "error")  # of each bench row, kept in the report


def summary(rows: list[dict]) -> dict:
    """The figures a preset states, from its bench rows: seconds per step and peak memory per variant, the loader."""
    out = {}
    for r in rows:
        out[r["variant"]] = {k: r[k] for k in FIGURES if k in r}
    return out


def check(dry: bool, out_path: Path, budget_s: float = BUDGET_S, presets=None) -> dict:
    """Every stage within ``budget_s``; the report (also written to ``out_path``)."""
    start, column = time.perf_counter(), 1 if dry else 0
    names = list(presets or PRESETS)
    report = dict(schema=SCHEMA, mode="dry-run" if dry else "gpu", started=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                  budget_s=budget_s, environment=None, stages=[], presets={})
    env = dict(MKE_COMPILE_BACKEND="eager", MKE_THREADS="1", OMP_NUM_THREADS="1") if dry else {}  # one thread:
    # on a small shared CPU, intra-op threads spin against each other (measured: twice the CPU time)
    self_argv = [python(), str(Path(__file__).resolve()), "_stage"] + (["--dry-run"] if dry else [])

    def stage(name: str, kind: str, argv: list[str]) -> dict:
        left = budget_s - (time.perf_counter() - start)
        if left < MIN_STAGE_S:
            result = dict(name=name, status="skipped", seconds=0.0, timeout_s=0.0, returncode=None, command=argv,
                          output_tail=f"skipped: {left:.0f} s of the {budget_s:.0f} s budget left")
        else:
            result = run_stage(name, argv, min(TIMEOUTS[kind][column], left), env)
        report["stages"].append(result)
        print(f"{name:<24} {result['status']:<8} {result['seconds']:7.1f} s", file=sys.stderr, flush=True)
        return result

    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        tmp = Path(tmp)
        r = stage("environment", "environment", self_argv + ["environment", str(tmp / "environment.json")])
        if r["status"] == "ok":
            report["environment"] = json.loads((tmp / "environment.json").read_text())
        tests = [python(), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu", "tests/"]
        stage("gpu_tests", "gpu_tests", tests + (["--collect-only"] if dry else []))
        caches = {}
        for name in names:
            report["presets"][name] = dict(task=task_of(name), settings=list(settings(name, dry)),
                                           config=config_args(name, dry),
                                           batch_size=2 if dry else resolved(name, dry).train.batch_size)
            r = stage(f"cache:{name}", "cache", self_argv + ["cache", name, str(tmp / name)])
            if r["status"] == "ok":
                caches[name] = json.loads((tmp / name / "cache.json").read_text())
                report["presets"][name]["cache_bytes"] = caches[name]["cache_bytes"]
        for name in names:
            if name not in caches:
                report["stages"].append(dict(name=f"bench:{name}", status="skipped", seconds=0.0, timeout_s=0.0,
                                             returncode=None, command=[], output_tail="skipped: no cache"))
                continue
            r = stage(f"bench:{name}", "bench", _bench_argv(name, dry, tmp / f"bench-{name}.json",
                                                             Path(caches[name]["cache"]), False))
            if r["status"] == "ok":
                report["presets"][name]["bench"] = summary(json.loads((tmp / f"bench-{name}.json").read_text())["rows"])
        for name in names:  # last: the slowest stage; the one that hangs loses only what is left
            r = stage(f"compile:{name}", "compile", _bench_argv(name, dry, tmp / f"compile-{name}.json", None, True))
            if r["status"] == "ok":
                rows = json.loads((tmp / f"compile-{name}.json").read_text())["rows"]
                report["presets"][name]["compile"] = summary(rows)
    report["wall_s"] = round(time.perf_counter() - start, 1)
    report["ok"] = all(s["status"] == "ok" for s in report["stages"])
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(report, indent=1) + "\n")
    return report


def _stage_main(argv: list[str]) -> None:
    """``_stage [--dry-run] environment OUT.json`` | ``_stage [--dry-run] cache PRESET FOLDER``."""
    dry = argv[0] == "--dry-run"
    argv = argv[1:] if dry else argv
    if argv[0] == "environment":
        Path(argv[1]).write_text(json.dumps(environment()))
    else:
        folder = Path(argv[2])
        result = make_cache(argv[1], folder, dry)
        (folder / "cache.json").write_text(json.dumps(result))


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_stage"]:
        _stage_main(argv[1:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", type=Path, default=None,
                        help="the JSON to write (default: $OUT/gpu_check.json, else ./gpu_check.json)")
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny shapes, 1 step: every stage, same JSON")
    parser.add_argument("--budget-s", type=float, default=BUDGET_S, help="seconds for all stages together")
    args = parser.parse_args(argv)
    out = args.out or Path(os.environ.get("OUT") or ".") / "gpu_check.json"
    report = check(args.dry_run, out, args.budget_s)
    print(f"{report['mode']}: {sum(s['status'] == 'ok' for s in report['stages'])} of {len(report['stages'])} "
          f"stages ok in {report['wall_s']} s; written to {out}", file=sys.stderr)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
