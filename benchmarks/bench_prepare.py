"""Parallel prepare: the same RAVDESS-format tree prepared with 1 and with 2 worker processes, side by side.

The tree is ``mke_experiments.testing.ravdess.make_ravdess_tree`` scaled up (``clips`` pairs: 8 emotions per
actor, up to 24 actors; 3 s wavs at 48 kHz and 3 s mp4s of 640×480 at 30 fps, as long as a RAVDESS clip),
prepared with ``ravdess.prepare``'s default parameters (4 face crops of 48×48, 40 mel bands, 3 s), each run in a
fresh interpreter (as ``mke-exp prepare`` runs) into a fresh folder. The target is a speed-up of at least 1.7×
with 2 workers on 2 free cores; the arrays of all runs must be equal.

    python benchmarks/bench_prepare.py [--clips 192] [--repeats 2] [--json OUT.json]
    python benchmarks/bench_prepare.py --digests [--clips 192] [--repeats 3] [--workers 1]

``--digests`` times what the content digests cost instead (``measure_digests``): the same prepare with and without
them (``MKE_PREPARE_DIGESTS=0``, a switch only this benchmark uses), runs taking turns, each timed inside its
interpreter (imports excluded), and the rerun's up-to-date check (every file re-hashed, nothing decoded) against
the prepare it spares. The target is a digest cost under 5 % of prepare time.

``--real DIR`` times ``prepare ravdess`` per clip of a real RAVDESS tree (``measure_real``; issue 25 point 6) against
decoding the same clip alone with PyAV, side by side in one run at one worker: per pair, prepare's own work on it
(``ravdess._decode_pair``: the content digest, the video frames, the faces, the wav and its log-mel) against (a) the
decode a sequential reader needs (PyAV, every frame up to the last of the ``frames`` wanted, plus the wav's samples)
and (a2) the same with FFmpeg's frame threads (faster when cores are free): the target is at most 1.5× the faster of
the two; (b) the decode the reader does (from the keyframe before each wanted frame, plus the wav); and (c) what the
reader before issue 25 decoded (OpenCV, every frame up to the last wanted one; no wav). The modes take
turns per clip and each keeps its fastest of ``--repeats``; a whole ``prepare`` of the tree (one worker, a fresh
folder, the cache written) is timed once per repeat as well. ``--profile`` adds cProfile's top entries of prepare's
per-clip work.

    python benchmarks/bench_prepare.py --real ../shared/realdata/ravdess [--repeats 5] [--profile] [--json OUT.json]

``measure(clips, workers=(1, 2))`` is the importable entry (benchmarks/bench_scale.py uses it).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mke_experiments.data import cache
from mke_experiments.testing.ravdess import make_ravdess_tree
from mke_theory.console import all_cores

MAX_CLIPS = 24 * 8  # one pair per actor and emotion in the fixture


def _tree(root: Path, clips: int) -> Path:
    actors = range(1, min(24, math.ceil(clips / 8)) + 1)
    return make_ravdess_tree(root, actors=actors, frames=90, width=640, height=480, seconds=3.0)


# One prepare as ``mke-exp prepare`` runs it: a fresh interpreter, which imports and warms up its libraries.
PREPARE = ("from mke_experiments.data import ravdess; "
           "ravdess.prepare({raw!r}, {out!r}, workers={workers}, shard_size={shard_size})")


def _cpu_seconds() -> float:
    """CPU time of the finished child processes (each prepare and its pool's workers), user + system."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return children.ru_utime + children.ru_stime


# One prepare timed inside its interpreter (the imports excluded, as they are the same with and without digests).
TIMED = ("import time; from mke_experiments.data import ravdess; t = time.perf_counter(); "
         "m = ravdess.prepare({raw!r}, {out!r}, workers={workers}, shard_size={shard_size}); "
         "print(time.perf_counter() - t, m['reused'])")


def _timed(raw: Path, out: Path, workers: int, digests: bool, shard_size: int = cache.SHARD_SIZE) -> tuple:
    """(seconds, CPU seconds, reused) of one prepare in a fresh interpreter, with or without the content digests;
    the CPU seconds count the whole child (its imports too, the same in both)."""
    code = TIMED.format(raw=str(raw), out=str(out), workers=workers, shard_size=shard_size)
    env = dict(os.environ, MKE_PREPARE_DIGESTS="1" if digests else "0")
    cpu = _cpu_seconds()
    line = subprocess.run([sys.executable, "-c", code], check=True, env=env, capture_output=True,
                          text=True).stdout.split()
    return float(line[-2]), _cpu_seconds() - cpu, line[-1] == "True"


def measure_digests(clips: int = MAX_CLIPS, repeats: int = 3, workers: int = 1) -> dict:
    """Seconds of ``ravdess.prepare`` with and without the content digests (item digests and shard checksums), the
    fastest of ``repeats`` runs each (taking turns, each into a fresh folder), and of the rerun that finds the
    cache up to date (every source file re-hashed). Raises AssertionError when the arrays differ."""
    result = {"clips": None, "workers": workers, "repeats": repeats}
    with tempfile.TemporaryDirectory(prefix="bench_digests_") as folder:
        raw = _tree(Path(folder) / "raw", clips)
        result["source_bytes"] = sum(p.stat().st_size for p in raw.rglob("*") if p.is_file())
        for run in range(repeats):
            for mode in ("with", "without"):
                out = Path(folder) / f"out_{mode}_{run}"
                seconds, cpu, _ = _timed(raw, out, workers, mode == "with")
                result[f"seconds_{mode}"] = round(min(seconds, result.get(f"seconds_{mode}", float("inf"))), 3)
                result[f"cpu_seconds_{mode}"] = round(min(cpu, result.get(f"cpu_seconds_{mode}", float("inf"))), 3)
                result["clips"] = json.loads((out / "manifest.json").read_text())["rows"]
            check, _, reused = _timed(raw, Path(folder) / "out_with_0", workers, True)
            assert reused, "the rerun did not find the cache up to date"
            result["seconds_check"] = round(min(check, result.get("seconds_check", float("inf"))), 3)
        first, second = Path(folder) / "out_with_0", Path(folder) / "out_without_0"
        for path in sorted((first / cache.ARRAYS).iterdir()):
            if path.stem != cache.DIGEST:
                assert np.array_equal(np.load(path), np.load(second / cache.ARRAYS / path.name)), path.name
    result["digest_cost"] = round(result["seconds_with"] / result["seconds_without"] - 1, 4)
    result["digest_cost_cpu"] = round(result["cpu_seconds_with"] / result["cpu_seconds_without"] - 1, 4)
    result["check_over_prepare"] = round(result["seconds_check"] / result["seconds_with"], 4)
    return result


ONE_THREAD = {variable: "1" for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                              "NUMBA_NUM_THREADS", "OPENCV_FOR_THREADS_NUM")}  # as a pool worker of 2


def measure(clips: int = MAX_CLIPS, workers=(1, 2), shard_size: int = cache.SHARD_SIZE, repeats: int = 1,
            one_thread: bool = False) -> dict:
    """Seconds of ``ravdess.prepare`` per worker count, each in a fresh interpreter as ``mke-exp prepare`` runs
    it, on a fixture tree of ``clips`` pairs (rounded up to a multiple of 8, at most 192). With ``repeats`` > 1
    the worker counts take turns and each keeps its fastest run (other work on a shared machine only ever slows
    a run down).

    Returns
    -------
    dict ``{"clips", "cores", "shard_size", "repeats", "seconds_<w>" and "cpu_seconds_<w>" per w, "speedup"}``:
    speedup is the time of the first worker count over the last; CPU seconds (of the fastest run) count the
    workers too (one worker decodes in the prepare's own process, with OpenCV's and OpenBLAS's own threads, so
    it may use more than one core). Raises AssertionError when the runs' arrays differ. ``one_thread`` adds
    ``seconds_1t``, one worker whose libraries run one thread each (as each of 2 pool workers on 2 cores does,
    ``cache._limit_threads``), and ``speedup_over_one_thread``, the last worker count against it: how the pool
    scales, apart from the libraries' own threads.
    """
    if not 1 <= clips <= MAX_CLIPS:
        raise ValueError(f"measure: clips={clips} must lie in 1..{MAX_CLIPS} (the fixture's actors × emotions)")
    result = {"clips": None, "cores": all_cores(), "shard_size": shard_size, "repeats": repeats}
    with tempfile.TemporaryDirectory(prefix="bench_prepare_") as folder:
        raw = _tree(Path(folder) / "raw", clips)
        for run in range(repeats):
            for w in (*workers, *(["1t"] if one_thread else [])):
                out = Path(folder) / f"out_{w}_{run}"
                started, cpu = time.perf_counter(), _cpu_seconds()
                code = PREPARE.format(raw=str(raw), out=str(out), workers=1 if w == "1t" else w, shard_size=shard_size)
                subprocess.run([sys.executable, "-c", code], check=True,
                               env=dict(os.environ, **ONE_THREAD) if w == "1t" else None)
                seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu
                manifest = json.loads((out / "manifest.json").read_text())
                if seconds < result.get(f"seconds_{w}", float("inf")):
                    result[f"seconds_{w}"], result[f"cpu_seconds_{w}"] = round(seconds, 3), round(cpu, 3)
                result["clips"] = manifest["rows"]
                first = Path(folder) / f"out_{workers[0]}_0"
                for path in sorted((first / cache.ARRAYS).iterdir()):
                    assert np.array_equal(np.load(path), np.load(out / cache.ARRAYS / path.name)), path.name
    result["speedup"] = round(result[f"seconds_{workers[0]}"] / result[f"seconds_{workers[-1]}"], 3)
    if one_thread:
        result["speedup_over_one_thread"] = round(result["seconds_1t"] / result[f"seconds_{workers[-1]}"], 3)
    return result


def _decode_sequential(video: Path, audio: Path, k: int, threads: str | None = None) -> int:
    """Decode-only reference (a): PyAV decodes every frame up to the last of the ``k`` wanted ones (converting those
    ``k`` to BGR, as the reader does), then the wav's samples; ``threads="AUTO"`` lets FFmpeg decode frames in
    parallel too (the reader keeps PyAV's default, slice threads). Returns the frames decoded."""
    import av

    from mke_experiments.data import media

    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        if threads:
            stream.thread_type = threads
        wanted = set(media.frame_indices(stream.frames, k).tolist())
        index = -1
        for index, frame in enumerate(container.decode(stream)):
            if index in wanted:
                frame.to_ndarray(format="bgr24")
            if index >= max(wanted):
                break
    _decode_wav(audio)
    return index + 1


def _decode_wav(audio: Path) -> None:
    import av

    with av.open(str(audio)) as container:
        for frame in container.decode(audio=0):
            frame.to_ndarray()


def _decode_seeking(video: Path, audio: Path, k: int) -> None:
    """Decode-only reference (b): the frames exactly as the reader decodes them (``ravdess._read_frames``: from the
    keyframe before each wanted frame), then the wav's samples."""
    from mke_experiments.data import ravdess

    ravdess._read_frames(video, k)
    _decode_wav(audio)


def _decode_opencv(video: Path, k: int) -> int:
    """Reference (c): the decode of the reader before issue 25: OpenCV grabs every frame up to the last wanted one and
    retrieves the ``k`` wanted (BGR); the wav is not read here. Returns the frames decoded."""
    import cv2

    from mke_experiments.data import media

    capture = cv2.VideoCapture(str(video))
    try:
        wanted = set(media.frame_indices(int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), k).tolist())
        index = 0
        while index <= max(wanted) and capture.grab():
            if index in wanted:
                capture.retrieve()
            index += 1
    finally:
        capture.release()
    return index


def measure_real(raw: Path, repeats: int = 5, profile: bool = False) -> dict:
    """Per real clip, the fastest of ``repeats`` (modes taking turns) of prepare's per-clip work and of the decode-only
    references (module docstring), in seconds; plus whole ``prepare`` runs of the tree at one worker."""
    import cProfile
    import io
    import pstats

    from mke_experiments.data import ravdess
    from mke_experiments.tasks.ravdess import RavdessPrepare

    settings = RavdessPrepare()
    params = ravdess._params(settings.frames, settings.size, 16000, settings.n_mels, settings.seconds)
    found = ravdess.scan(raw)
    if not found.pairs:
        raise SystemExit(f"{raw} holds no audio-visual RAVDESS pair (01-01-*.mp4 with 03-01-*.wav)")
    ravdess._face_detector()
    modes = {
        "prepare": lambda pair: ravdess._decode_pair(pair, found.raw_dir, params),
        "decode_sequential": lambda pair: _decode_sequential(pair.video, pair.audio, params["frames"]),
        "decode_sequential_frame_threads": lambda pair: _decode_sequential(pair.video, pair.audio, params["frames"],
                                                                           "AUTO"),
        "decode_seeking": lambda pair: _decode_seeking(pair.video, pair.audio, params["frames"]),
        "decode_opencv_before": lambda pair: _decode_opencv(pair.video, params["frames"]),
    }
    for pair in found.pairs:  # warm up: the libraries' first calls, the page cache
        for run in modes.values():
            run(pair)
    best = {found.relative(pair.video): {} for pair in found.pairs}
    whole = float("inf")
    with tempfile.TemporaryDirectory(prefix="bench_prepare_real_") as folder:
        for repeat in range(repeats):
            for pair in found.pairs:
                clip = best[found.relative(pair.video)]
                for mode, run in modes.items():
                    started = time.perf_counter()
                    run(pair)
                    clip[mode] = min(time.perf_counter() - started, clip.get(mode, float("inf")))
            started = time.perf_counter()
            manifest = ravdess.prepare(raw, Path(folder) / f"out_{repeat}", workers=1)
            whole = min(whole, time.perf_counter() - started)
    result = {"raw": str(raw), "clips": len(found.pairs), "repeats": repeats, "frames": params["frames"],
              "seconds": params["seconds"], "faces_found": manifest["faces"]["found"],
              "faces_frames": manifest["faces"]["frames"], "prepare_whole_s": round(whole, 4), "per_clip": {}}
    for name, clip in best.items():
        result["per_clip"][name] = {mode: round(value, 4) for mode, value in clip.items()}
    totals = {mode: sum(clip[mode] for clip in best.values()) for mode in modes}
    result["totals_s"] = {mode: round(value, 4) for mode, value in totals.items()}
    fastest = min(totals["decode_sequential"], totals["decode_sequential_frame_threads"])  # the fairer reference
    result["ratio_to_sequential"] = round(totals["prepare"] / fastest, 3)
    result["ratio_to_seeking"] = round(totals["prepare"] / totals["decode_seeking"], 3)
    result["ratio_whole_to_sequential"] = round(whole / fastest, 3)
    if profile:
        profiler = cProfile.Profile()
        profiler.enable()
        for pair in found.pairs:
            modes["prepare"](pair)
        profiler.disable()
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(12)
        result["profile"] = text.getvalue()
    return result


def _print_real(r: dict, load: float) -> None:
    print(f"prepare ravdess per real clip against decode-only, one worker, {r['frames']} frames and {r['seconds']} s "
          f"of audio per clip, fastest of {r['repeats']} (1-minute load average {load:.2f} before), milliseconds:")
    print("(seq: sequential PyAV decode with slice / frame threads; seek: as the reader decodes; cv2 old: the reader "
          "before issue 25, video only; /seq: prepare over the faster seq)")
    print(f"{'clip':34} {'prepare':>8} {'seq':>8} {'seq.fr':>8} {'seek':>8} {'cv2 old':>8} {'/seq':>6} {'/seek':>6}")
    rows = [*r["per_clip"].items(), (f"all {r['clips']} clips", r["totals_s"])]
    for name, clip in rows:
        fastest = min(clip["decode_sequential"], clip["decode_sequential_frame_threads"])
        modes = ("prepare", "decode_sequential", "decode_sequential_frame_threads", "decode_seeking",
                 "decode_opencv_before")
        times = " ".join(f"{1e3 * clip[mode]:8.1f}" for mode in modes)
        print(f"{name:34} {times} {clip['prepare'] / fastest:6.2f} {clip['prepare'] / clip['decode_seeking']:6.2f}")
    print(f"prepare / sequential decode-only: {r['ratio_to_sequential']:.2f}x (target <= 1.5x); whole prepare of the "
          f"tree (cache written) {r['prepare_whole_s']:.2f} s = {r['ratio_whole_to_sequential']:.2f}x; faces found in "
          f"{r['faces_found']} of {r['faces_frames']} frames")
    if "profile" in r:
        print(r["profile"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=MAX_CLIPS)
    parser.add_argument("--repeats", type=int, default=2, help="Runs per worker count, taking turns; the fastest "
                                                                    "counts.")
    parser.add_argument("--json", type=Path, default=None, help="Write the numbers here.")
    parser.add_argument("--one-thread", action="store_true", help="Also time one worker on one thread per library.")
    parser.add_argument("--digests", action="store_true", help="Time the content digests' cost instead.")
    parser.add_argument("--workers", type=int, default=1, help="With --digests: the prepare's workers.")
    parser.add_argument("--real", type=Path, default=None, metavar="DIR",
                        help="Time prepare per clip of a real RAVDESS tree against decode-only instead.")
    parser.add_argument("--profile", action="store_true", help="With --real: cProfile prepare's per-clip work.")
    args = parser.parse_args()
    load = os.getloadavg()[0]  # other work on the machine: it shares the cores the workers count on
    if args.real is not None:
        r = measure_real(args.real, max(1, args.repeats), args.profile)
        _print_real(r, load)
        if args.json is not None:
            args.json.write_text(json.dumps({k: v for k, v in r.items() if k != "profile"}, indent=1) + "\n")
        return
    if args.digests:
        r = measure_digests(args.clips, max(1, args.repeats), args.workers)
        print(f"prepare of {r['clips']} RAVDESS-format clips, {r['workers']} worker(s) (1-minute load average "
              f"{load:.2f} before), fastest of {r['repeats']}: with content digests {r['seconds_with']:.2f} s, "
              f"without {r['seconds_without']:.2f} s: the digests cost {100 * r['digest_cost']:+.1f} % (target < 5 %), "
              f"{100 * r['digest_cost_cpu']:+.1f} % in CPU time ({r['cpu_seconds_with']:.2f} against "
              f"{r['cpu_seconds_without']:.2f} CPU-s); the rerun's up-to-date check (every one of the "
              f"{r['source_bytes'] / 1e6:.0f} MB of source files re-hashed) {r['seconds_check']:.2f} s, "
              f"{100 * r['check_over_prepare']:.1f} % of the prepare")
        if args.json is not None:
            args.json.write_text(json.dumps(r, indent=1) + "\n")
        return
    result = measure(args.clips, repeats=args.repeats, one_thread=args.one_thread)
    print(f"prepare of {result['clips']} RAVDESS-format clips on {result['cores']} cores (1-minute load average "
          f"{load:.2f} before): 1 worker {result['seconds_1']:.1f} s ({result['cpu_seconds_1']:.1f} CPU-s), "
          f"2 workers {result['seconds_2']:.1f} s ({result['cpu_seconds_2']:.1f} CPU-s), speed-up "
          f"{result['speedup']:.2f}× (target ≥ 1.7×); fastest of {result['repeats']} run(s) each")
    if args.one_thread:
        print(f"1 worker with one thread per library {result['seconds_1t']:.1f} s: 2 workers "
              f"{result['speedup_over_one_thread']:.2f}× that")
    if args.json is not None:
        keys = ("clips", "seconds_1", "seconds_2", "speedup", "seconds_1t", "speedup_over_one_thread")
        args.json.write_text(json.dumps({key: result[key] for key in keys if key in result}, indent=1) + "\n")

if __name__ == "__main__":
    main()
