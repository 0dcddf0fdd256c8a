"""Memory and loader throughput of ``mke-exp run``'s data path as the data grow: 2k, 20k, 200k clips.

For each size a VGGSound cache in the real format (version 2: one ``.npy`` per array, ``valid``, manifest) is
written at the default prepare parameters (4 frames of 64×64 uint8, 64 mel bands × 1001 steps float16) as
*sparse* files: the large arrays are never written, so 200k clips (≈ 36 GB apparent) cost almost no disk and
read as zeros. A fresh process then does what ``mke-exp run vggsound --data CACHE`` does before and during
training — ``Task.load_split`` (the cache's arrays mapped, the split drawn, its id), ``SeedRun`` (the inputs
as the training loop holds them) — and reads ``--batches`` shuffled batches of D_u (α and β) through the
training loop's loader (``loader.Batches``, ``train.workers`` processes) onto the CPU. It reports its peak RSS
(the workers' separately) and the loader's samples/s. Targets: peak RSS at 200k ≤ 1.2 × the peak at 2k;
throughput at 200k ≥ 0.8 × that at 2k. ``--prepare`` adds the parallel prepare (``bench_prepare.measure``:
2 workers ≥ 1.7 × one worker).

    python benchmarks/bench_scale.py --clips 2000,20000,200000 --json OUT.json [--workers 2] [--prepare]

Reads of a sparse file come from the page cache's zero pages: the throughput measured is the loader's own
cost (indexing, copying, conversion, inter-process transfer), not a disk's. On a real disk, reading rows
adds the disk's own time; the batches read are the same.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def write_cache(folder: Path, n: int) -> dict:
    """A VGGSound cache of ``n`` clips at the default parameters, large arrays sparse (never written); 90 % of
    the clips are train clips (``splits.json``), labels cycle through the 309 classes."""
    from mke_experiments.data import avclips, cache
    from mke_experiments.tasks.avsound import SPLITS_FILE, SoundPrepare, class_list

    p = SoundPrepare()
    params = avclips._params(p.frames, p.size, 16000, p.n_mels, p.seconds)
    classes = class_list("all")
    names = np.array([f"clip{i:08d}" for i in range(n)])
    labels = np.array(classes)[np.arange(n) % len(classes)]
    small = dict(names=names, labels=labels, valid=np.ones(n, bool))
    large = dict(frames=((p.frames, 3, p.size, p.size), np.uint8),
                 logmel=((1, p.n_mels, params["n_times"]), np.float16))
    arrays = folder / cache.ARRAYS
    arrays.mkdir(parents=True)
    for name, (shape, dtype) in large.items():
        np.lib.format.open_memmap(arrays / f"{name}.npy", mode="w+", dtype=dtype, shape=(n, *shape)).flush()
    for name, values in small.items():
        np.save(arrays / f"{name}.npy", values)
    # the manifest, item digests and checksums of the real format (the large arrays are read once, as zeros)
    cache.seal(avclips.cache_spec("vggsound"), folder, params, f"synthetic-{n}", {"counts": {"clips": n}})
    train = np.random.default_rng(0).random(n) < 0.9
    (folder / SPLITS_FILE).write_text(json.dumps({str(c): "train" if t else "test" for c, t in zip(names, train)}))
    apparent = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    on_disk = sum(f.stat().st_blocks * 512 for f in folder.rglob("*") if f.is_file())
    return dict(cache_bytes_apparent=apparent, cache_bytes_on_disk=on_disk)


def child(folder: str, batches: int, batch_size: int, workers: int) -> dict:
    """The data path of ``mke-exp run vggsound`` in this process: load, split, ``SeedRun``, loader over D_u."""
    import gc

    import torch

    from mke_experiments.config import resolve_config
    from mke_experiments.protocol import RunFiles, SeedRun
    from mke_experiments.tasks import get_task
    from mke_experiments.train.loader import Batches, shard

    t0 = time.perf_counter()
    task = get_task("vggsound")
    cfg = resolve_config(task, (f"train.workers={workers}", f"train.batch_size={batch_size}"))
    cfg, split = task.load_split(cfg, folder)
    run = SeedRun(cfg, split, 0, RunFiles(None, "vggsound", 0, "bench", split.split_id), torch.device("cpu"))
    load_s = time.perf_counter() - t0
    read = Batches((run.t["unlabeled_alpha"], run.t["unlabeled_beta"]), torch.device("cpu"), workers,
                   cfg.train.prefetch)
    order = shard(torch.randperm(split.n_unlabeled, generator=torch.Generator().manual_seed(0)), 0, 1)
    rows = [order[i:i + batch_size] for i in range(0, (batches + 4) * batch_size, batch_size)]
    stream = read(rows)
    for _ in range(4):  # the loader's processes start, the first batches arrive
        next(stream)
    t0 = time.perf_counter()
    samples = sum(len(a) for a, _ in stream)
    seconds = time.perf_counter() - t0
    del stream, read
    gc.collect()  # the loader's workers end and are waited for: RUSAGE_CHILDREN counts them
    own, workers_usage = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return dict(n_unlabeled=split.n_unlabeled, load_s=load_s, loader_samples_per_s=samples / seconds,
                peak_rss_bytes=own.ru_maxrss * 1024, worker_peak_rss_bytes=workers_usage.ru_maxrss * 1024)


def measure(n: int, batches: int, batch_size: int, workers: int) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"bench_scale_{n}_") as folder:
        t0 = time.perf_counter()
        disk = write_cache(Path(folder), n)
        written_s = time.perf_counter() - t0
        out = subprocess.run([sys.executable, __file__, "--child", folder, "--batches", str(batches),
                              "--batch-size", str(batch_size), "--workers", str(workers)],
                             capture_output=True, text=True, check=False)
        if out.returncode:
            raise SystemExit(f"the measurement at {n} clips failed:\n{out.stderr[-3000:]}")
        result = json.loads(out.stdout.strip().splitlines()[-1])
    return dict(result, clips=n, cache_write_s=written_s, **disk)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", default="2000,20000,200000", help="comma-separated cache sizes")
    parser.add_argument("--batches", type=int, default=60, help="timed batches per size")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2, help="loader processes (train.workers)")
    parser.add_argument("--prepare", action="store_true", help="also time prepare with 1 and 2 workers")
    parser.add_argument("--json", type=Path, default=None, help="write the rows here")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        print(json.dumps(child(args.child, args.batches, args.batch_size, args.workers)))
        return 0
    sizes = [int(c) for c in args.clips.split(",")]
    rows = []
    for n in sizes:
        row = measure(n, args.batches, args.batch_size, args.workers)
        rows.append(row)
        print(f"{n:>8} clips  peak RSS {row['peak_rss_bytes'] / 2**20:7.0f} MiB (each loader worker ≤ "
              f"{row['worker_peak_rss_bytes'] / 2**20:.0f} MiB)  loader {row['loader_samples_per_s']:8.0f} "
              f"samples/s  load+split {row['load_s']:5.1f} s  cache {row['cache_bytes_apparent'] / 2**30:6.1f} GiB "
              f"apparent, {row['cache_bytes_on_disk'] / 2**20:.0f} MiB on disk", flush=True)
    first, last = rows[0], rows[-1]
    rss, speed = last["peak_rss_bytes"] / first["peak_rss_bytes"], \
        last["loader_samples_per_s"] / first["loader_samples_per_s"]
    print(f"{last['clips']} vs {first['clips']} clips: peak RSS ×{rss:.2f} (target ≤ 1.2), "
          f"loader throughput ×{speed:.2f} (target ≥ 0.8)")
    report = dict(rows=rows, rss_ratio=rss, throughput_ratio=speed)
    if args.prepare:
        sys.path.insert(0, str(Path(__file__).parent))
        from bench_prepare import measure as measure_prepare

        report["prepare"] = measure_prepare()
        print(f"prepare ({report['prepare']['clips']} RAVDESS fixture clips): 2 workers ×"
              f"{report['prepare']['speedup']:.2f} one worker (target ≥ 1.7)")
    if args.json is not None:
        args.json.write_text(json.dumps(rows if not args.prepare else report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
