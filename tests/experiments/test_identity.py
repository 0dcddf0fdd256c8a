"""Identity by content (issue 23, point 1): a prepared cache records a content digest per item and a checksum per
shard of every array; ``prepare`` (fresh rerun or resumed) sees a source whose bytes changed whatever its size and
time stamps, ``load`` and ``mke-exp verify`` see arrays that changed after prepare, and a run's ``split_id`` comes
from the content, so a run on other rows never resumes another run's records."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from mke_experiments.cli import cli
from mke_experiments.data import cache, specs
from mke_experiments.testing.cache import SPEC, ToyError, build_toy, reuse_toy

RUN = ["--epochs", "1", "--seeds", "0", "--methods", "teacher", "--device", "cpu"]


def arrays_of(out) -> dict:
    return {path.stem: np.load(path) for path in sorted((out / cache.ARRAYS).glob("*.npy"))}


def same_bytes_and_times(path, data: bytes, offset: int = 0) -> None:
    """Overwrite ``path`` from ``offset`` with ``data`` in place, keeping its size, inode and time stamps."""
    stat = path.stat()
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns


# ---- prepare: a rerun and a resumed build see changed items ---------------------------------------
def test_a_rerun_rebuilds_when_an_item_changed_with_the_same_names_and_sizes(tmp_path, caplog):
    out = tmp_path / "out"
    build_toy(out, shard_size=8, workers=1)
    assert reuse_toy(out) is not None  # nothing changed: up to date
    with caplog.at_level(logging.WARNING, logger="mke_experiments.data.cache"):
        assert reuse_toy(out, edits={6: 1.0, 30: 2.0}) is None  # the quick key (fingerprint) is the same
    assert "Toy: 2 of 40 source item(s) changed since they were prepared (same names and sizes, other bytes): " \
           "6, 30; preparing again" in caplog.text
    assert build_toy(out, shard_size=8, workers=1, edits={6: 1.0, 30: 2.0})["build"]["resumed_shards"] == 0
    assert cache.load(SPEC, out)["x"][4].tolist() == [7.0, 6.5, -6.0]  # row 4 of the valid ones is item 6


def test_a_resumed_build_decodes_again_the_committed_shards_whose_items_changed(tmp_path, caplog):
    out, reference = tmp_path / "out", tmp_path / "reference"
    edits = {2: 4.0, 9: "gone"}  # shard 0: item 2 other bytes; shard 1: item 9 now unreadable
    build_toy(reference, shard_size=8, workers=1, edits=edits)
    with pytest.raises(cache.Interrupted):
        build_toy(out, shard_size=8, workers=1, stop_after_shards=3)
    with caplog.at_level(logging.WARNING, logger="mke_experiments.data.cache"):
        manifest = build_toy(out, shard_size=8, workers=1, edits=edits)
    assert manifest["build"]["resumed_shards"] == 1  # shard 2 kept, shards 0 and 1 decoded again
    assert "2 finished shard(s) of the interrupted prepare hold changed items; decoding them again" in caplog.text
    stored, expected = arrays_of(out), arrays_of(reference)
    assert not stored["valid"][9] and not stored["x"][9].any() and stored["names"][9] == ""  # no stale row kept
    for name in expected:
        np.testing.assert_array_equal(stored[name], expected[name], err_msg=name)
    assert manifest["content_digest"] == json.loads((reference / "manifest.json").read_text())["content_digest"]


def test_rows_of_an_interrupted_commit_are_not_kept_when_their_item_became_unreadable(tmp_path):
    """A kill in the middle of committing shard 1 leaves its rows written but the shard not committed; when the
    resumed build finds item 12 unreadable, its row must become zero and invalid, not keep the old row."""
    out = tmp_path / "out"
    with pytest.raises(cache.Interrupted):
        build_toy(out, shard_size=8, workers=1, stop_after_shards=1)
    partial = out / cache.PARTIAL / cache.ARRAYS
    for name, value in (("x", np.float16(99)), ("valid", True), ("names", "stale")):
        array = np.load(partial / f"{name}.npy", mmap_mode="r+")
        array[8:16] = value  # the rows of shard 1 as a half-done commit left them
        array.flush()
        del array
    build_toy(out, shard_size=8, workers=1, edits={12: "gone"})
    stored = arrays_of(out)
    assert not stored["valid"][12] and not stored["x"][12].any() and stored["names"][12] == ""
    assert cache.verify(SPEC, out)["rows"] == 40  # the checksums describe the bytes on disk


# ---- load and verify: arrays changed after prepare -------------------------------------------------
def test_verify_names_the_array_and_rows_of_flipped_bytes(tmp_path):
    out = tmp_path / "out"
    build_toy(out, shard_size=8, workers=1)
    result = cache.verify(SPEC, out)
    assert result["arrays"] == 4 and result["rows"] == 40 and result["bytes"] > 0
    path = out / cache.ARRAYS / "x.npy"
    header = path.stat().st_size - 40 * 3 * 2
    same_bytes_and_times(path, b"\x00\x7c", header + (17 * 3 + 1) * 2)  # item 17's x[1] becomes +inf
    with pytest.raises(ToyError, match=rf"^Toy cache array {re.escape(str(path))}: rows 16–23 differ from the "
                                       r"checksums recorded at prepare \(bit rot, or a file replaced or edited "
                                       r"since\); rebuild it: run mke-exp prepare toy "):
        cache.verify(SPEC, out)


def test_an_array_copied_from_another_cache_is_refused_by_load(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    build_toy(one, shard_size=8, workers=1)
    build_toy(two, shard_size=8, workers=1, edits={20: 1.0})  # same shapes, one row differs
    shutil.copy2(two / cache.ARRAYS / "x.npy", one / cache.ARRAYS / "x.npy")  # size and mtime kept, not the inode
    with pytest.raises(ToyError, match=r"x\.npy: rows 16–23 differ from the checksums recorded at prepare \(the "
                                       r"file was replaced or edited since\)"):
        cache.load(SPEC, one)


def test_a_copied_cache_is_verified_once_then_loads_without_reading_its_arrays(tmp_path, caplog):
    build_toy(tmp_path / "one", shard_size=8, workers=1)
    copy = tmp_path / "copy"
    shutil.copytree(tmp_path / "one", copy)  # new inodes and times: load cannot tell it from a replaced file
    with caplog.at_level(logging.WARNING, logger="mke_experiments.data.cache"):
        first = cache.load(SPEC, copy)
    assert caplog.text.count("changed on disk since prepare") == 4
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mke_experiments.data.cache"):
        second = cache.load(SPEC, copy)
    assert caplog.text == ""  # the records were refreshed after the verification
    assert first["x"].key == second["x"].key == cache.load(SPEC, tmp_path / "one")["x"].key


def test_the_content_key_follows_the_rows_not_the_source_fingerprint(tmp_path):
    a = build_toy(tmp_path / "a", shard_size=8, workers=1, fingerprint="paths-a")
    b = build_toy(tmp_path / "b", shard_size=8, workers=1, fingerprint="paths-b")  # same content, other paths
    c = build_toy(tmp_path / "c", shard_size=8, workers=1, edits={1: 1.0})  # same paths and sizes, other bytes
    assert cache.content_key(a, "x") == cache.content_key(b, "x") != cache.content_key(c, "x")
    ids = [cache.load(SPEC, tmp_path / name)["x"].content_id for name in "abc"]
    assert ids[0] == ids[1] != ids[2]


def test_mke_exp_verify_prints_ok_or_names_the_damage(tmp_path):
    from mke_experiments.testing.ravdess import write_synthetic_cache

    out = write_synthetic_cache(tmp_path / "cache")
    result = CliRunner().invoke(cli, ["verify", str(out)])
    assert result.exit_code == 0, result.output
    assert re.fullmatch(rf"ok: 7 arrays, 64 rows, 0\.000334 GB checked in \d+\.\d s \({re.escape(str(out))}\)\n",
                        result.output), result.output
    same_bytes_and_times(out / cache.ARRAYS / "labels.npy", b"\x07", 128 + 8 * 20)  # the label of row 20
    result = CliRunner().invoke(cli, ["verify", str(out)])
    assert result.exit_code == 1 and "labels.npy: rows 16–31 differ from the checksums" in result.output
    with pytest.raises(Exception, match="labels.npy: rows 16–31"):  # load reads the small arrays whole: it sees it
        cache.load(specs.find_spec(out), out)


def test_nan_in_a_cache_array_read_through_lazy_rows_is_one_sentence_naming_the_file(tmp_path):
    """Bit rot that left the file's size and times alone reaches the task: its statistics name the file and the
    fix instead of a ValueError from LazyRows (a traceback, exit 70, before)."""
    from mke_experiments.data.rows import LazyRows, NpyFile
    from mke_theory.core.errors import MKEError

    path = tmp_path / "cache" / "arrays" / "logmel.npy"
    path.parent.mkdir(parents=True)
    values = np.ones((6, 1, 2, 3), np.float16)
    values[4, 0, 1, 2] = np.nan
    np.save(path, values)
    rows = LazyRows(NpyFile(path), index=np.arange(6))
    with pytest.raises(MKEError, match=rf"^{re.escape(str(path))} holds NaN or ±inf values among the rows read "
                                       r"\(prepare never stores one: .*\); check it with mke-exp verify "
                                       rf"{re.escape(str(tmp_path / 'cache'))} and rebuild the cache with mke-exp "
                                       r"prepare\.$"):
        rows.moments()
    assert rows[:4].moments() == (1.0, 0.0)


# ---- real readers: the same-size change of a source file ------------------------------------------
RV = dict(frames=1, size=16, n_mels=8, seconds=0.3)


@pytest.fixture
def ravdess_tree(tmp_path):
    for module in ("cv2", "librosa", "soundfile", "skimage"):
        pytest.importorskip(module)
    from mke_experiments.testing.ravdess import make_ravdess_tree

    return make_ravdess_tree(tmp_path / "raw", actors=(1, 2), emotions=(1, 2, 3), frames=2)


def test_ravdess_prepare_sees_a_wav_overwritten_with_its_size_and_mtime_and_a_swap(ravdess_tree, tmp_path):
    from mke_experiments.data import ravdess
    from mke_experiments.testing.ravdess import key_of

    out = tmp_path / "out"
    first = ravdess.prepare(ravdess_tree, out, workers=1, **RV)
    assert ravdess.prepare(ravdess_tree, out, workers=1, **RV)["reused"] is True
    wav = ravdess_tree / "Actor_01" / f"03-{key_of(1, 2)}.wav"
    same_bytes_and_times(wav, bytes(2000), wav.stat().st_size - 2000)  # silence at the end, same size
    second = ravdess.prepare(ravdess_tree, out, workers=1, **RV)
    assert second["reused"] is False and second["source_fingerprint"] == first["source_fingerprint"]
    assert second["content_digest"] != first["content_digest"]
    # two wavs of the same size swapped (other emotions): their names and sizes are the same as before
    a, b = (ravdess_tree / "Actor_02" / f"03-{key_of(2, e)}.wav" for e in (1, 3))
    a_bytes, b_bytes = a.read_bytes(), b.read_bytes()
    same_bytes_and_times(a, b_bytes)
    same_bytes_and_times(b, a_bytes)
    third = ravdess.prepare(ravdess_tree, out, workers=1, **RV)
    assert third["reused"] is False and third["content_digest"] != second["content_digest"]


def test_a_resumed_ravdess_prepare_decodes_again_a_pair_changed_after_the_kill(ravdess_tree, tmp_path,
                                                                             monkeypatch):
    from mke_experiments.data import ravdess
    from mke_experiments.testing.ravdess import key_of

    out = tmp_path / "out"
    real_build = cache.build
    monkeypatch.setattr(cache, "build", lambda *a, **k: real_build(*a, **{**k, "stop_after_shards": 1}))
    with pytest.raises(cache.Interrupted):
        ravdess.prepare(ravdess_tree, out, workers=1, shard_size=2, **RV)
    monkeypatch.setattr(cache, "build", real_build)
    wav = ravdess_tree / "Actor_01" / f"03-{key_of(1, 1)}.wav"  # in shard 0, committed
    same_bytes_and_times(wav, bytes(2000), wav.stat().st_size - 2000)
    resumed = ravdess.prepare(ravdess_tree, out, workers=1, shard_size=2, **RV)
    fresh = ravdess.prepare(ravdess_tree, tmp_path / "fresh", workers=1, shard_size=2, **RV)
    assert resumed["build"]["resumed_shards"] == 0 and resumed["content_digest"] == fresh["content_digest"]
    for name, value in arrays_of(tmp_path / "fresh").items():
        np.testing.assert_array_equal(arrays_of(out)[name], value, err_msg=name)


def test_nyudv2_prepare_sees_a_mat_file_of_the_same_size_with_other_images(tmp_path):
    pytest.importorskip("h5py")
    from mke_experiments.data import nyudv2
    from mke_experiments.testing.nyudv2 import make_labeled_mat, small_split

    one, two = make_labeled_mat(tmp_path / "one.mat", n=6, seed=0), make_labeled_mat(tmp_path / "two.mat", n=6,
                                                                                      seed=1)
    size = max(one.stat().st_size, two.stat().st_size)
    for path in (one, two):  # HDF5 ignores bytes past its end of file: both get the same size
        with open(path, "ab") as f:
            f.write(bytes(size - path.stat().st_size))
    raw = tmp_path / "raw" / nyudv2.RAW_NAME
    raw.parent.mkdir()
    shutil.copy2(one, raw)
    options = dict(size=(16, 16), val=1, split=small_split(6), workers=1)
    first = nyudv2.prepare(raw, tmp_path / "out", **options)
    assert nyudv2.prepare(raw, tmp_path / "out", **options)["reused"] is True
    stat = raw.stat()
    shutil.copyfile(two, raw)
    os.utime(raw, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    second = nyudv2.prepare(raw, tmp_path / "out", **options)
    assert second["reused"] is False and second["source_fingerprint"] == first["source_fingerprint"]
    assert "mtime_ns" not in first["source_fingerprint"]


# ---- a run's identity covers its rows ---------------------------------------------------------------
def test_a_run_on_a_cache_of_swapped_files_trains_instead_of_resuming_the_first_caches_records(tmp_path):
    for module in ("cv2", "librosa", "soundfile", "skimage"):
        pytest.importorskip(module)
    from mke_experiments.testing.ravdess import key_of, make_ravdess_tree

    raw = make_ravdess_tree(tmp_path / "raw5", actors=(1, 5, 9, 10, 11), emotions=range(1, 9), frames=2)
    prepare = ["--workers", "1", "--set", "prepare.frames=1", "--set", "prepare.size=16", "--set", "prepare.n_mels=8"]
    run = [*RUN, "--set", "data.labeled_actors=1", "--set", "model.width=4", "--set", "model.hidden=8",
           "--out", str(tmp_path / "runs")]
    assert CliRunner().invoke(cli, ["prepare", "ravdess", "--raw", str(raw), "--out", str(tmp_path / "c1"),
                                    *prepare]).exit_code == 0
    first = CliRunner().invoke(cli, ["run", "ravdess", "--data", str(tmp_path / "c1"), *run])
    assert first.exit_code == 0, first.output
    records = sorted((tmp_path / "runs").rglob("ravdess__teacher__seed0*.json"))
    assert len(records) == 1
    a, b = (raw / "Actor_10" / f"03-{key_of(10, e)}.wav" for e in (2, 7))  # same size, other emotions
    a_bytes, b_bytes = a.read_bytes(), b.read_bytes()
    same_bytes_and_times(a, b_bytes)
    same_bytes_and_times(b, a_bytes)
    assert CliRunner().invoke(cli, ["prepare", "ravdess", "--raw", str(raw), "--out", str(tmp_path / "c2"),
                                    *prepare]).exit_code == 0
    again = CliRunner().invoke(cli, ["run", "ravdess", "--data", str(tmp_path / "c1"), *run])
    assert again.exit_code == 0 and sorted((tmp_path / "runs").rglob("ravdess__teacher__seed0*.json")) == records
    second = CliRunner().invoke(cli, ["run", "ravdess", "--data", str(tmp_path / "c2"), *run])
    assert second.exit_code == 0, second.output
    split_ids = {json.loads(p.read_text())["split_id"] for p in (tmp_path / "runs").rglob("ravdess__teacher__*.json")}
    assert len(split_ids) == 2  # trained on the second cache: a record of its own split


def test_a_cache_prepared_without_digests_is_refused_by_load_and_rebuilt_by_prepare(tmp_path, monkeypatch):
    """MKE_PREPARE_DIGESTS=0 exists for benchmarks/bench_prepare.py alone: such a cache has no content identity,
    so a run must never read it (its split id could not tell its rows from other data)."""
    from mke_experiments.testing.cache import SPEC, build_toy, reuse_toy

    out = tmp_path / "out"
    monkeypatch.setenv("MKE_PREPARE_DIGESTS", "0")
    build_toy(out, shard_size=8, workers=1)
    monkeypatch.delenv("MKE_PREPARE_DIGESTS")
    with pytest.raises(Exception, match="prepared without content digests"):
        cache.load(SPEC, out)
    assert reuse_toy(out) is None  # the next prepare rebuilds it
    build_toy(out, shard_size=8, workers=1)
    assert len(cache.load(SPEC, out)["names"]) > 0
