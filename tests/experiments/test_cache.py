"""The version-2 cache: ``cache.build`` (parallel, resumable, kill-safe) and ``cache.load`` (lazy, one sentence
per broken file), on the toy data set of ``mke_experiments.testing.cache`` and on a real RAVDESS prepare."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tracemalloc

import numpy as np
import pytest

from mke_experiments.data import cache
from mke_experiments.data.rows import LazyRows, NpyFile
from mke_experiments.testing.cache import COLUMNS, SPEC, ToyError, build_toy, decode, hash_item, reuse_toy, summarize

REBUILD = "run mke-exp prepare toy --raw DIR --out"
TOY_VALID = [i for i in range(40) if i % 7 != 3 and i % 11 != 5]


def arrays_of(out) -> dict:
    return {path.stem: np.load(path) for path in sorted((out / cache.ARRAYS).glob("*.npy"))}


def _files(manifest) -> dict:
    """The manifest's array entries without the file records (inode and time differ between caches)."""
    return {name: {k: v for k, v in entry.items() if k != "file"} for name, entry in manifest["arrays"].items()}


def assert_same_arrays(a, b) -> None:
    first, second = arrays_of(a), arrays_of(b)
    assert sorted(first) == sorted(second)
    for name in first:
        assert first[name].dtype == second[name].dtype and np.array_equal(first[name], second[name]), name


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    out = tmp_path_factory.mktemp("toy") / "out"
    return out, build_toy(out, shard_size=8, workers=1)


# ---- build and load -------------------------------------------------------------------------------
def test_build_writes_one_npy_per_array_and_load_returns_the_valid_rows(toy):
    out, manifest = toy
    assert sorted(p.name for p in out.iterdir()) == ["arrays", "checksums.json", "manifest.json"]  # .partial is gone
    assert list(manifest)[:len(cache.SHARED_KEYS)] == list(cache.SHARED_KEYS) and manifest["complete"] is True
    assert {name: (e["shape"], e["dtype"]) for name, e in manifest["arrays"].items()} == {
        "x": ([40, 3], "<f2"), "names": ([40], "<U12"), "valid": ([40], "|b1"), "digest": ([40], "|S32")}
    for name, entry in manifest["arrays"].items():  # what load compares: the file as published
        stat = (out / cache.ARRAYS / f"{name}.npy").stat()
        assert entry["file"] == {"bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns, "ctime_ns": stat.st_ctime_ns,
                                 "inode": stat.st_ino}
    checksums = json.loads((out / cache.CHECKSUMS).read_text())
    assert checksums["shard_size"] == 8 and len(checksums["arrays"]["x"]) == 5
    assert manifest["build"] == {"workers": 1, "shard_size": 8, "shards": 5, "resumed_shards": 0, "restarted": None}
    assert json.loads((out / "manifest.json").read_text()) == {k: v for k, v in manifest.items() if k != "reused"}
    stored = arrays_of(out)
    assert stored["valid"].tolist() == [i in TOY_VALID for i in range(40)]
    assert not stored["x"][~stored["valid"]].any() and (stored["names"][~stored["valid"]] == "").all()  # zeros

    loaded = cache.load(SPEC, out)
    assert sorted(loaded) == ["manifest", "names", "x"]
    assert type(loaded["names"]) is np.ndarray and loaded["names"].tolist() == [f"item{i}" for i in TOY_VALID]
    x = loaded["x"]
    assert isinstance(x, LazyRows) and isinstance(x.base, NpyFile) and x.stored_dtype == np.float16
    assert x.index.tolist() == TOY_VALID
    np.testing.assert_array_equal(np.asarray(x), [[i, i + 0.5, -i] for i in TOY_VALID])
    assert x.key == cache.content_key(manifest, "x") and x.key.startswith("mke-toy-cache/v3/")
    assert "toy-1" not in x.key and manifest["arrays"]["x"]["sha256"] in x.key  # content, not the fingerprint
    assert stored["digest"].tolist() == [hash_item(i).encode() for i in range(40)]  # unreadable items too
    # every unreadable item is listed with its reason, the NaN ones by build's finite check
    reasons = {s["item"]: s["reason"] for s in manifest["skipped"]}
    assert sorted(reasons) == sorted(set(range(40)) - set(TOY_VALID))
    assert reasons[3] == "item 3 is unreadable" and "non-finite" in reasons[5]
    assert manifest["counts"] == {"clips": len(TOY_VALID), "skipped": 40 - len(TOY_VALID),
                                  "even": 20 - 3}  # the notes of 10, 24 and 38 say only why they were skipped


def test_a_current_cache_is_reused(toy):
    out, manifest = toy
    calls = []
    assert reuse_toy(out, progress=calls.append) == {**manifest, "reused": True}
    assert calls == [40]
    assert reuse_toy(out, params={"scale": 2}) is None and reuse_toy(out, fingerprint="x") is None


def test_progress_is_told_the_total_first_and_counts_every_item(tmp_path):
    events = []

    class Bar:
        def start(self, total):
            events.append(("start", total))

        def __call__(self, n):
            events.append(n)

    build_toy(tmp_path / "out", n=20, shard_size=8, workers=1, progress=Bar())
    assert events == [("start", 20), 8, 8, 4]


# ---- resuming -------------------------------------------------------------------------------------
def test_an_interrupted_build_continues_and_ends_byte_identical(toy, tmp_path):
    reference, _ = toy
    out = tmp_path / "out"
    with pytest.raises(cache.Interrupted):
        build_toy(out, shard_size=8, workers=1, stop_after_shards=2)
    state = json.loads((out / cache.PARTIAL / cache.PROGRESS).read_text())
    assert cache.committed_shards(out) == [0, 1]
    assert state["header"]["items"] == 40 and state["header"]["shard_size"] == 8
    notes = json.loads((out / cache.PARTIAL / cache.SHARDS / "0.json").read_text())["notes"]  # shard 0: items 0-7
    assert notes["3"] == {"skipped": "item 3 is unreadable"} and "19" not in notes
    assert not (out / cache.ARRAYS).exists() and not (out / "manifest.json").exists()  # nothing published
    calls = []
    manifest = build_toy(out, shard_size=8, workers=1, progress=calls.append)
    assert manifest["build"]["resumed_shards"] == 2 and manifest["build"]["restarted"] is None
    assert calls == [16, 8, 8, 8]  # the two committed shards at once, then the rest
    assert_same_arrays(out, reference)
    assert manifest["counts"] == toy[1]["counts"] and manifest["skipped"] == toy[1]["skipped"]


def test_other_parameters_or_source_start_clean_and_say_so(tmp_path, caplog):
    out = tmp_path / "out"
    with pytest.raises(cache.Interrupted):
        build_toy(out, shard_size=8, workers=1, stop_after_shards=1)
    with caplog.at_level(logging.WARNING, logger="mke_experiments.data.cache"):
        manifest = build_toy(out, shard_size=8, workers=1, params={"scale": 2})
    sentence = manifest["build"]["restarted"]
    assert re.fullmatch(r"Toy prepare in .* started clean: the interrupted prepare in .*\.partial was for other "
                        r"parameters, its 1 finished shard\(s\) are discarded\.", sentence)
    assert sentence in caplog.text and manifest["build"]["resumed_shards"] == 0
    with pytest.raises(cache.Interrupted):
        build_toy(out, shard_size=8, workers=1, stop_after_shards=1)
    assert "another source" in build_toy(out, shard_size=8, workers=1, fingerprint="toy-2")["build"]["restarted"]


def test_damaged_partial_arrays_start_clean(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(cache.Interrupted):
        build_toy(out, shard_size=8, workers=1, stop_after_shards=1)
    (out / cache.PARTIAL / cache.ARRAYS / "x.npy").write_bytes(b"")
    assert "missing or damaged" in build_toy(out, shard_size=8, workers=1)["build"]["restarted"]
    assert cache.load(SPEC, out)["names"].tolist() == [f"item{i}" for i in TOY_VALID]
    with pytest.raises(cache.Interrupted):
        build_toy(out, shard_size=8, workers=1, params={"scale": 2}, stop_after_shards=1)
    (out / cache.PARTIAL / cache.PROGRESS).write_text("{half")
    assert "progress.json of the interrupted prepare is unreadable" in build_toy(
        out, shard_size=8, workers=1, params={"scale": 2})["build"]["restarted"]


def test_a_failed_build_keeps_the_previous_cache_and_its_finished_shards(toy, tmp_path):
    reference, _ = toy
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    with pytest.raises(ToyError, match="broken at item 20"):  # a fatal decode error
        build_toy(out, shard_size=8, workers=1, params={"scale": 3}, fail_at=20)
    assert cache.committed_shards(out) == [0, 1]
    assert_same_arrays(out, reference)
    assert cache.load(SPEC, out)["manifest"]["params"] == {"scale": 1}  # still the previous, complete cache
    with pytest.raises(ToyError, match="none of the toy items"):  # summarize refuses: nothing is published
        cache.build(SPEC, out, [3, 10], decode, COLUMNS, {"scale": 3}, "toy-3", summarize, hash_item=hash_item,
                    workers=1)
    assert cache.load(SPEC, out)["manifest"]["params"] == {"scale": 1}


# ---- workers --------------------------------------------------------------------------------------
def test_two_workers_give_the_arrays_of_one(toy, tmp_path):
    manifest = build_toy(tmp_path / "out", shard_size=8, workers=2)
    assert manifest["build"]["workers"] == 2
    assert_same_arrays(tmp_path / "out", toy[0])
    assert manifest["skipped"] == toy[1]["skipped"]


def test_a_worker_that_dies_is_one_sentence_and_keeps_the_finished_shards(tmp_path):
    with pytest.raises(ToyError, match=r"^Toy prepare: a worker process died \(.*; out of memory\?\); the \d+ "
                                       r"finished shard\(s\) in .*\.partial are kept: rerun the same command to "
                                       r"continue\.$"):
        build_toy(tmp_path / "out", n=40, shard_size=4, workers=2, seconds=0.01, die_at=30)
    manifest = build_toy(tmp_path / "out", n=40, shard_size=4, workers=2)  # continues
    assert manifest["build"]["resumed_shards"] >= 1 and manifest["counts"]["clips"] == len(TOY_VALID)


@pytest.mark.parametrize("workers", [0, -1, 1.5, True])
def test_workers_below_one_is_one_sentence(tmp_path, workers):
    with pytest.raises(ToyError, match=r"^prepare: workers=.* must be a whole number >= 1 \(1 decodes in this "
                                       r"process\)\.$"):
        build_toy(tmp_path / "out", workers=workers)
    assert not (tmp_path / "out" / cache.PARTIAL).exists()


def test_more_workers_than_shards_use_one_per_shard_and_say_so(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="mke_experiments.data.cache"):
        manifest = build_toy(tmp_path / "out", n=6, shard_size=4, workers=8)
    assert "Toy prepare: 8 workers asked for 6 clips in 2 shard(s) of up to 4; using 2 worker(s), one per shard." \
        in caplog.text
    assert manifest["build"]["workers"] == 2 and manifest["build"]["shards"] == 2


# ---- what load refuses ----------------------------------------------------------------------------
def _truncate(out):
    path = out / cache.ARRAYS / "x.npy"
    path.write_bytes(path.read_bytes()[:-10])


def _edit_manifest(out, **changes):
    path = out / "manifest.json"
    manifest = json.loads(path.read_text())
    for key, value in changes.items():
        manifest[key] = value(manifest) if callable(value) else value
    path.write_text(json.dumps(manifest))


def _set_x(shape, dtype):
    return lambda out: _edit_manifest(out, arrays=lambda m: {**m["arrays"], "x": {**m["arrays"]["x"], "shape": shape,
                                                                                  "dtype": dtype}})


def _old_format(out):
    shutil.rmtree(out / cache.ARRAYS)
    np.savez_compressed(out / "toy_cache.npz", x=np.zeros(3))
    _edit_manifest(out, version=1, cache="toy_cache.npz")


BROKEN = {
    "truncated": (_truncate, r"Toy cache array {out}/arrays/x\.npy is truncated \(\d+ bytes, expected \d+: an "
                             r"interrupted copy\?\)"),
    "missing array": (lambda out: (out / cache.ARRAYS / "names.npy").unlink(),
                      r"Toy cache array {out}/arrays/names\.npy is missing"),
    "not npy": (lambda out: (out / cache.ARRAYS / "valid.npy").write_bytes(b"garbage" * 20),
                r"Toy cache array {out}/arrays/valid\.npy is not a readable \.npy file"),
    "shape": (_set_x([40, 4], "<f2"),
              r"Toy cache array {out}/arrays/x\.npy holds <f2 \[40, 3\] but the manifest says <f2 \[40, 4\]"),
    "dtype": (_set_x([40, 3], "<f4"),
              r"Toy cache array {out}/arrays/x\.npy holds <f2 \[40, 3\] but the manifest says <f4 \[40, 3\]"),
    "arrays listed": (lambda out: _edit_manifest(out, arrays=lambda m: {"x": m["arrays"]["x"]}),
                      r"Toy manifest {out}/manifest\.json does not list the arrays \['digest', 'names', 'valid', "
                      r"'x'\]"),
    "old format": (_old_format, r"Toy cache {out}/toy_cache\.npz is in the old single-file format \(version 1\); "
                                r"this library reads version 3: rebuild it: "),
    "old format, no manifest": (lambda out: (_old_format(out), (out / "manifest.json").unlink()),
                                r"Toy cache {out}/toy_cache\.npz is in the old single-file format \(version 1\)"),
    "manifest missing": (lambda out: (out / "manifest.json").unlink(), r"Toy cache manifest {out}/manifest\.json "
                                                                        r"is missing; "),
    "manifest corrupt": (lambda out: (out / "manifest.json").write_text("{not json"),
                         r"Toy manifest {out}/manifest\.json is corrupt or not a Toy cache manifest"),
    "incomplete": (lambda out: _edit_manifest(out, complete=False),
                   r"Toy manifest {out}/manifest\.json says the cache is incomplete \(an interrupted prepare\)"),
    "version 4": (lambda out: _edit_manifest(out, version=4),
                  r"Toy cache {out}/manifest\.json has format version 4, this library reads 3;"),
    "version 2": (lambda out: _edit_manifest(out, version=2),
                  r"Toy cache {out}/manifest\.json has format version 2, this library reads 3 \(it has no content "
                  r"digests\);"),
}


@pytest.mark.parametrize("kind", list(BROKEN))
def test_each_broken_cache_is_one_sentence_with_the_rebuild_command(toy, tmp_path, kind):
    out = tmp_path / "out"
    shutil.copytree(toy[0], out)
    spoil, message = BROKEN[kind]
    spoil(out)
    with pytest.raises(ToyError) as info:
        cache.load(SPEC, out)
    text = str(info.value)
    assert re.match(message.format(out=re.escape(str(out))), text), text
    assert text.endswith(f"{REBUILD} {out}.") and text.count(". ") == 0  # one sentence, the command last
    assert reuse_toy(out) is None  # and prepare rebuilds it


def test_a_missing_folder_is_one_sentence(tmp_path):
    with pytest.raises(ToyError, match=rf"^Toy cache folder {re.escape(str(tmp_path / 'no'))} does not exist; "
                                       rf"{REBUILD} {re.escape(str(tmp_path / 'no'))}\.$"):
        cache.load(SPEC, tmp_path / "no")


def test_a_new_build_removes_the_version_1_file(toy, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(toy[0], out)
    _old_format(out)
    build_toy(out, shard_size=8, workers=1)
    assert sorted(p.name for p in out.iterdir()) == ["arrays", "checksums.json", "manifest.json"]


# ---- memory ---------------------------------------------------------------------------------------
def test_load_reads_no_large_bytes(tmp_path, monkeypatch):
    """A 1 GB cache (sparse on disk: all but 3 of 50,000 rows invalid) loads in well under a megabyte."""
    monkeypatch.setattr(cache.disk, "reserve", lambda *args: False)  # the test needs no 1 GB of disk: left sparse
    monkeypatch.setattr(cache.disk, "require_space", lambda *args: None)
    columns = {"x": cache.Column((128, 160), "|u1"), "names": COLUMNS["names"]}  # 20 kB per row
    items = 50_000
    manifest = cache.build(SPEC, tmp_path / "big", list(range(items)), _sparse_decode, columns, {}, "big",
                           lambda valid, notes: {}, hash_item=str, workers=1, shard_size=25_000)
    assert manifest["arrays"]["x"]["shape"] == [items, 128, 160]
    x_file = tmp_path / "big" / cache.ARRAYS / "x.npy"
    assert x_file.stat().st_size > 10 ** 9 and os.stat(x_file).st_blocks * 512 < 10 ** 8  # sparse
    tracemalloc.start()
    loaded = cache.load(SPEC, tmp_path / "big")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2 ** 20, peak
    assert isinstance(loaded["x"], LazyRows) and loaded["x"].shape == (3, 128, 160)
    assert np.asarray(loaded["x"][1]).max() == 7 and loaded["names"].tolist() == ["0", "7", "49999"]


def _sparse_decode(item):
    if item not in (0, 7, 49_999):
        return None, {}, str(item)
    return {"x": np.full((128, 160), item % 256, np.uint8), "names": str(item)}, {}, str(item)


# ---- a real prepare, killed -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def ravdess_raw(tmp_path_factory):
    for module in ("cv2", "librosa", "soundfile", "skimage"):
        pytest.importorskip(module)
    from mke_experiments.testing.ravdess import key_of, make_ravdess_tree

    return make_ravdess_tree(tmp_path_factory.mktemp("rv") / "raw", actors=(1, 2, 3), frames=4,
                             corrupt=[f"01-{key_of(2, 3)}"])


RV = dict(frames=2, size=24, n_mels=16, seconds=0.5)


def test_a_killed_ravdess_prepare_continues_to_the_same_cache(ravdess_raw, tmp_path):
    from mke_experiments.data import ravdess

    reference = ravdess.prepare(ravdess_raw, tmp_path / "reference", workers=1, shard_size=1, **RV)
    n = reference["rows"]
    code = (f"from mke_experiments.data import ravdess; ravdess.prepare({str(ravdess_raw)!r}, "
            f"{str(tmp_path / 'out')!r}, workers=2, shard_size=1, **{RV!r})")
    child = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)  # its own process group
    committed = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and child.poll() is None:
            committed = cache.committed_shards(tmp_path / "out")
            if committed:
                break
            time.sleep(0.005)
    finally:
        os.killpg(child.pid, signal.SIGKILL)  # the prepare and its workers
        child.wait()
    at_kill = cache.committed_shards(tmp_path / "out")
    assert 1 <= len(at_kill) < n, f"killed after {len(at_kill)} of {n} shards: not in the middle"
    assert not (tmp_path / "out" / "manifest.json").exists()

    manifest = ravdess.prepare(ravdess_raw, tmp_path / "out", workers=1, shard_size=1, **RV)
    assert manifest["build"]["resumed_shards"] == len(at_kill) and manifest["build"]["restarted"] is None
    assert_same_arrays(tmp_path / "out", tmp_path / "reference")
    for key in ("counts", "skipped", "faces", "report", "params", "source_fingerprint", "content_digest"):
        assert manifest[key] == reference[key], key
    assert _files(manifest) == _files(reference)


def test_ravdess_with_two_workers_equals_one(ravdess_raw, tmp_path):
    from mke_experiments.data import ravdess

    one = ravdess.prepare(ravdess_raw, tmp_path / "one", workers=1, shard_size=5, **RV)
    two = ravdess.prepare(ravdess_raw, tmp_path / "two", workers=2, shard_size=5, **RV)
    assert two["build"]["workers"] == 2
    assert_same_arrays(tmp_path / "one", tmp_path / "two")
    assert {k: v for k, v in one.items() if k not in ("created", "seconds_taken", "build", "arrays")} == \
        {k: v for k, v in two.items() if k not in ("created", "seconds_taken", "build", "arrays")}
    assert _files(one) == _files(two)


def test_mke_exp_prepare_passes_workers_and_shows_the_total(ravdess_raw, tmp_path):
    from click.testing import CliRunner

    from mke_experiments.cli import cli

    args = ["prepare", "ravdess", "--raw", str(ravdess_raw), "--out", str(tmp_path / "out"), "--workers", "1",
            "--set", "prepare.frames=1", "--set", "prepare.size=16"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "preparing ravdess: 24/24 clips done in" in result.output and "clips=23" in result.output
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["build"]["workers"] == 1
    again = CliRunner().invoke(cli, args)  # reused after checking every pair's files: the bar gets the total
    assert again.exit_code == 0 and "preparing ravdess (checking the source files): 24/24 clips done in" in \
        again.output and "preparing ravdess: " not in again.output, again.output
    refused = CliRunner().invoke(cli, [*args[:-5], "0"])
    assert refused.exit_code == 2 and "--workers" in refused.output


def test_committing_a_shard_rewrites_nothing_that_grows_with_the_clips(tmp_path, monkeypatch):
    """Before: progress.json held every committed shard and note and was rewritten after each shard (200k toy
    items took 78 s and 248 MiB). Now it is written once, and each shard writes only its own notes."""
    written = []
    real = cache._write_json
    monkeypatch.setattr(cache, "_write_json",
                        lambda path, value, **k: written.append((path, value)) or real(path, value, **k))
    build_toy(tmp_path / "out", n=40, shard_size=4, workers=1)
    progress = [value for path, value in written if path.name == cache.PROGRESS]
    shards = [value for path, value in written if path.parent.name == cache.SHARDS]
    assert len(progress) == 1 and len(shards) == 10
    assert all(set(shard["notes"]) <= {str(i) for i in range(k * 4, k * 4 + 4)} for k, shard in enumerate(shards))
    assert all(set(shard["checksums"]) == {"x", "names", "valid", "digest"} for shard in shards)
