"""RAVDESS names, pairing, the prepare cache and the splits, on a tiny format-exact tree."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

pytest.importorskip("cv2")
pytest.importorskip("librosa")
pytest.importorskip("soundfile")
pytest.importorskip("skimage")

from mke_experiments.data import cache as cache_store  # noqa: E402
from mke_experiments.data.ravdess import (  # noqa: E402
    CACHE_SPEC,
    EMOTIONS,
    MANIFEST_NAME,
    RavdessError,
    RavdessName,
    actor_split,
    load_cache,
    parse_name,
    prepare,
    random_split,
    scan,
)
from mke_experiments.data.rows import LazyRows  # noqa: E402
from mke_experiments.testing.ravdess import (  # noqa: E402
    FLLR_BYTES,
    SAMPLE_RATE,
    key_of,
    make_ravdess_tree,
    wav_chunks,
    write_mp4,
)

ACTORS = (1, 2, 5, 9, 10)
CORRUPT_MP4 = key_of(1, 3)
CORRUPT_WAV = key_of(2, 4)
NO_WAV = key_of(5, 5)
NO_MP4 = key_of(9, 6)
NO_FACE = key_of(10, 7)


# ---- names ----------------------------------------------------------------------------------------
def test_parse_name_reads_the_seven_fields():
    name = parse_name("Actor_12/01-01-03-02-01-02-12.mp4")
    assert isinstance(name, RavdessName)
    assert name == RavdessName(modality=1, vocal_channel=1, emotion=3, intensity=2, statement=1, repetition=2,
                               actor=12, label=2, key="01-03-02-01-02-12")
    assert EMOTIONS[name.label] == "happy"
    assert parse_name("03-01-01-01-02-01-24.wav").label == 0  # neutral, normal intensity
    assert parse_name("02-02-06-02-01-01-01.mp4").vocal_channel == 2  # song up to fearful
    assert parse_name("01-01-08-02-02-02-07").emotion == 8  # no extension: no extension check


@pytest.mark.parametrize("name, rule", [
    ("01-01-03-01-01-01.mp4", "seven two-digit fields"),
    ("1-01-03-01-01-01-01.mp4", "seven two-digit fields"),
    ("01-01-03-01-01-01-1a.mp4", "seven two-digit fields"),
    ("04-01-03-01-01-01-01.mp4", "modality 04"),
    ("00-01-03-01-01-01-01.mp4", "modality 00"),
    ("01-03-03-01-01-01-01.mp4", "vocal channel 03"),
    ("01-01-09-01-01-01-01.mp4", "emotion 09"),
    ("01-01-00-01-01-01-01.mp4", "emotion 00"),
    ("01-02-07-01-01-01-01.mp4", "song has emotions 01–06"),
    ("01-01-03-03-01-01-01.mp4", "intensity 03"),
    ("01-01-01-02-01-01-01.mp4", "neutral"),
    ("01-01-03-01-03-01-01.mp4", "statement 03"),
    ("01-01-03-01-01-03-01.mp4", "repetition 03"),
    ("01-01-03-01-01-01-25.mp4", "actor 25"),
    ("01-01-03-01-01-01-00.mp4", "actor 00"),
    ("03-02-03-01-01-01-18.wav", "actor 18 recorded no song"),
    ("03-01-03-01-01-01-01.mp4", ".wav, not .mp4"),
    ("01-01-03-01-01-01-01.wav", ".mp4, not .wav"),
    ("Actor_02/01-01-03-01-01-01-01.mp4", "differs from the folder Actor_02"),
])
def test_parse_name_rejects_each_broken_rule_naming_the_file(name, rule):
    with pytest.raises(RavdessError, match=re.escape(rule)) as info:
        parse_name(name)
    assert name in str(info.value)


# ---- the fixture itself ---------------------------------------------------------------------------
def test_fixture_wav_has_the_fllr_chunk_and_soundfile_reads_it(tmp_path):
    import soundfile

    root = make_ravdess_tree(tmp_path / "raw", actors=(3,), emotions=(2,), seconds=0.1)
    wav = root / "Actor_03" / f"03-{key_of(3, 2)}.wav"
    chunks = wav_chunks(wav)
    assert [c for c, _ in chunks] == [b"fmt ", b"FLLR", b"data"]
    assert chunks[0][1] == 16 and chunks[1][1] == FLLR_BYTES == 4044 and chunks[2][1] == 2 * 4800
    info = soundfile.info(str(wav))
    assert (info.samplerate, info.channels, info.subtype, info.frames) == (SAMPLE_RATE, 1, "PCM_16", 4800)
    samples, _ = soundfile.read(str(wav), dtype="int16")
    assert np.abs(samples).max() > 8000  # the tone, not the filler's zeros


# ---- scan -----------------------------------------------------------------------------------------
def test_scan_pairs_by_key_and_ignores_video_only_and_song(tmp_path):
    root = make_ravdess_tree(tmp_path / "raw", actors=(2, 1), emotions=(1, 4), frames=2,
                             unpaired=[key_of(1, 4), f"01-{key_of(2, 1)}"])
    (root / "Actor_01" / "notes.txt").write_text("not media")
    (root / "Actor_01" / "01-01-03-01-01-01-02.mp4").write_bytes(b"")  # actor 02 in Actor_01
    (root / "Actor_01" / "01-01-01-02-01-01-01.mp4").write_bytes(b"")  # neutral never strong
    (root / "Stray").mkdir()  # not an Actor_XX folder: not walked
    (root / "Stray" / f"01-{key_of(7, 2)}.mp4").write_bytes(b"")

    found = scan(root)
    assert [(p.name.actor, p.name.emotion) for p in found.pairs] == [(1, 1), (2, 4)]  # sorted by actor, key
    for pair in found.pairs:
        assert pair.video.name == f"01-{pair.name.key}.mp4" and pair.audio.name == f"03-{pair.name.key}.wav"
        assert pair.video.parent == pair.audio.parent == root / f"Actor_{pair.name.actor:02d}"
    assert sorted(p.name for p in found.unpaired) == [f"01-{key_of(1, 4)}.mp4", f"03-{key_of(2, 1)}.wav"]
    assert found.ignored == {"video_only": 2, "song": 4, "other": 1}  # 02-01 mp4 per actor; song mp4 + wav
    invalid = {p.name: reason for p, reason in found.invalid}
    assert set(invalid) == {"01-01-03-01-01-01-02.mp4", "01-01-01-02-01-01-01.mp4"}
    assert "folder Actor_01" in invalid["01-01-03-01-01-01-02.mp4"]
    assert "neutral" in invalid["01-01-01-02-01-01-01.mp4"]


@pytest.mark.parametrize("make", ["missing", "empty", "no_actor_folders"])
def test_scan_of_a_raw_folder_without_actor_folders_says_what_is_expected(tmp_path, make):
    raw = tmp_path / "raw"
    if make != "missing":
        raw.mkdir()
    if make == "no_actor_folders":
        (raw / "Video_Speech_Actor_01.zip").write_bytes(b"PK")
    with pytest.raises(RavdessError, match="Actor_01 … Actor_24 folders holding 01-01-") as info:
        scan(raw)
    assert str(raw) in str(info.value)
    with pytest.raises(RavdessError, match=re.escape(str(raw))):
        prepare(raw, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("reported, used", [(10, 10), (7, 7), (0, 10), (25, 10)])
def test_a_missing_or_too_long_frame_count_falls_back_to_the_frames_there_are(reported, used):
    from mke_experiments.data.ravdess import _frame_count

    # A short count (7) is trusted: frames 0..6 exist; a missing or too long count uses the 10 video packets.
    assert _frame_count(reported, 10) == used


def _sequential_frames(path, k: int) -> list:
    """The frames the reader must return: those OpenCV decodes from the start (the reader before issue 25), so the
    cache's bytes stay those of caches made before (frame i: the i-th decoded)."""
    import cv2

    from mke_experiments.data.media import frame_indices

    capture, every = cv2.VideoCapture(str(path)), []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        every.append(image)
    capture.release()
    return [every[i] for i in frame_indices(len(every), k)]


@pytest.mark.parametrize("k", [1, 4, 7, 13, 90, 120])
def test_the_seeking_reader_returns_the_frames_a_full_opencv_decode_gives(tmp_path, k):
    """The reader seeks to the keyframe before each wanted frame (the fixture's mp4v has one every 12 frames) and goes
    on from the last decoded frame when that is nearer: a wrong keyframe, an off-by-one timestamp or a frame taken
    from before the seek would return other pixels. k=120 > 90 frames repeats frames."""
    from mke_experiments.data.ravdess import _read_frames

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(90)]  # every frame different
    path = tmp_path / "clip.mp4"
    write_mp4(path, images)
    frames = _read_frames(path, k)
    expected = _sequential_frames(path, k)
    assert len(frames) == k and all(np.array_equal(a, b) for a, b in zip(frames, expected))


def test_a_video_file_without_a_video_stream_is_an_unreadable_clip(tmp_path):
    from mke_experiments.data.ravdess import _ClipError, _read_frames

    root = make_ravdess_tree(tmp_path / "raw", actors=(3,), emotions=(2,), seconds=0.1)
    audio_only = root / "Actor_03" / f"03-{key_of(3, 2)}.wav"  # opens fine, holds only audio
    with pytest.raises(_ClipError, match="no video stream"):
        _read_frames(audio_only, 4)


# ---- prepare and load_cache -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """The main tree (5 actors × 8 emotions) with two corrupt files, two missing partners and one faceless
    clip, prepared once with the defaults."""
    base = tmp_path_factory.mktemp("ravdess")
    root = make_ravdess_tree(base / "raw", actors=ACTORS, corrupt=[f"01-{CORRUPT_MP4}", f"{CORRUPT_WAV}.wav"],
                             unpaired=[NO_WAV, f"01-{NO_MP4}"])
    blank = [np.full((48, 64, 3), 128, np.uint8)] * 8
    write_mp4(root / "Actor_10" / f"01-{NO_FACE}.mp4", blank)  # a clip without a face: centre crops
    calls = []
    manifest = prepare(root, base / "out", progress=calls.append, workers=1, shard_size=16)
    return root, base / "out", manifest, calls


def test_prepare_writes_the_cache_with_documented_shapes(prepared):
    root, out, manifest, calls = prepared
    assert manifest["reused"] is False
    assert sorted(p.name for p in out.iterdir()) == ["arrays", "checksums.json", MANIFEST_NAME]  # no temporary file
    assert sorted(p.name for p in (out / "arrays").iterdir()) == [
        "actors.npy", "digest.npy", "frames.npy", "keys.npy", "labels.npy", "logmel.npy", "valid.npy"]
    assert calls == [16, 16, 6]  # per shard of pairs, readable or not
    cache = load_cache(out)
    n = 40 - 2 - 2  # 40 keys, 2 without partner, 2 corrupt
    params = manifest["params"]
    assert (params["frames"], params["size"], params["n_mels"], params["n_fft"], params["hop_length"]) == (
        4, 48, 40, 512, 160)
    assert isinstance(cache["frames"], LazyRows) and isinstance(cache["logmel"], LazyRows)
    assert cache["frames"].shape == (n, 4, 3, 48, 48) and cache["frames"].stored_dtype == np.uint8
    assert cache["logmel"].shape == (n, 1, 40, 371) and cache["logmel"].stored_dtype == np.float16  # 3.7 s at 100 /s
    assert cache["logmel"].all_finite()
    assert cache["labels"].dtype == np.int64 and cache["actors"].dtype == np.int64
    assert manifest["counts"]["clips"] == n and manifest["rows"] == 38  # one row per pair, valid or not
    assert (manifest["arrays"]["frames"]["shape"], manifest["arrays"]["frames"]["dtype"]) == ([38, 4, 3, 48, 48],
                                                                                            "|u1")
    assert cache["manifest"]["source_fingerprint"] == manifest["source_fingerprint"]
    assert set(manifest["versions"]) >= {"opencv", "librosa", "soundfile", "numpy"}
    on_disk = json.loads((out / MANIFEST_NAME).read_text())
    assert on_disk == {k: v for k, v in manifest.items() if k != "reused"}


def test_labels_and_actors_come_from_the_names(prepared):
    root, out, _, _ = prepared
    cache = load_cache(out)
    for key, label, actor in zip(cache["keys"], cache["labels"], cache["actors"]):
        name = parse_name(f"01-{key}.mp4")
        assert label == name.emotion - 1 and actor == name.actor == int(key[-2:])
    assert sorted(set(cache["labels"].tolist())) == list(range(8))
    assert sorted(set(cache["actors"].tolist())) == list(ACTORS)
    assert list(cache["keys"]) == sorted(cache["keys"], key=lambda k: (int(k[-2:]), k))


def test_audio_and_faces_carry_the_class(prepared):
    _, out, manifest, _ = prepared
    cache = load_cache(out)
    # The fixture's tone rises with the emotion: the loudest mel band does too.
    peak_band = np.asarray(cache["logmel"])[:, 0].mean(axis=2).argmax(axis=1)  # (n,)
    by_label = [np.median(peak_band[cache["labels"] == c]) for c in range(8)]
    assert by_label == sorted(by_label) and by_label[0] < by_label[-1]
    faces = manifest["faces"]
    assert faces["frames"] == 36 * 4 and faces["not_found"] == 4  # only the blank clip
    assert faces["found"] >= 0.9 * faces["frames"]
    assert faces["clips_with_centre_crop"] == [{"key": NO_FACE, "frames_without_face": 4}]


def test_corrupt_and_unpaired_files_are_skipped_and_listed(prepared):
    _, out, manifest, _ = prepared
    skipped = {s["file"]: s for s in manifest["skipped"]}
    assert set(skipped) == {f"Actor_01/01-{CORRUPT_MP4}.mp4", f"Actor_02/03-{CORRUPT_WAV}.wav"}
    assert "PyAV cannot open the video" in skipped[f"Actor_01/01-{CORRUPT_MP4}.mp4"]["reason"]
    assert "soundfile cannot read" in skipped[f"Actor_02/03-{CORRUPT_WAV}.wav"]["reason"]
    assert sorted(manifest["report"]["unpaired"]) == [f"Actor_05/01-{NO_WAV}.mp4", f"Actor_09/03-{NO_MP4}.wav"]
    counts = manifest["counts"]
    assert (counts["pairs"], counts["skipped"], counts["unpaired"]) == (38, 2, 2)
    assert (counts["ignored_video_only"], counts["ignored_song"]) == (5, 10)
    keys = set(load_cache(out)["keys"].tolist())
    assert not keys & {CORRUPT_MP4, CORRUPT_WAV, NO_WAV, NO_MP4}


def test_rerun_reuses_the_cache_and_other_parameters_rebuild(prepared, tmp_path):
    root, out, manifest, _ = prepared
    frames = out / "arrays" / "frames.npy"
    stamp = frames.stat().st_mtime_ns
    calls = []
    again = prepare(root, out, progress=calls.append)
    assert again["reused"] is True and calls == [38]
    assert frames.stat().st_mtime_ns == stamp
    assert {k: v for k, v in again.items() if k != "reused"} == {k: v for k, v in manifest.items() if k != "reused"}

    other = tmp_path / "out"
    shutil.copytree(out, other)
    rebuilt = prepare(root, other, frames=2, size=32, n_mels=20, seconds=1.0, workers=1)
    assert rebuilt["reused"] is False
    cache = load_cache(other)
    assert cache["frames"].shape == (36, 2, 3, 32, 32) and cache["logmel"].shape == (36, 1, 20, 101)
    assert load_cache(out)["frames"].shape == (36, 4, 3, 48, 48)  # the first cache is untouched


def test_a_failed_prepare_keeps_the_existing_cache(prepared, tmp_path):
    root, out, _, _ = prepared
    before = (out / "arrays" / "frames.npy").read_bytes()
    with pytest.raises(RavdessError, match="does not exist"):
        prepare(tmp_path / "nowhere", out)
    with pytest.raises(RavdessError, match="frames=0"):
        prepare(tmp_path / "nowhere", out, frames=0)
    with pytest.raises(RavdessError, match="workers=0 must be a whole number >= 1"):
        prepare(root, out, frames=1, workers=0)
    assert (out / "arrays" / "frames.npy").read_bytes() == before
    assert load_cache(out)["manifest"]["params"]["frames"] == 4


def test_load_cache_errors_name_the_folder_and_the_fix(prepared, tmp_path):
    missing = tmp_path / "no_cache_here"
    with pytest.raises(RavdessError, match=re.escape(str(missing))) as info:
        load_cache(missing)
    assert "mke-exp prepare ravdess --raw DIR --out" in str(info.value)

    _, out, _, _ = prepared
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    logmel = broken / "arrays" / "logmel.npy"
    logmel.write_bytes(logmel.read_bytes()[:1000])
    with pytest.raises(RavdessError, match=re.escape(str(logmel)) + " is truncated") as info:
        load_cache(broken)
    assert "mke-exp prepare ravdess" in str(info.value)
    (broken / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(RavdessError, match=re.escape(str(broken / MANIFEST_NAME))):
        load_cache(broken)
    (broken / MANIFEST_NAME).unlink()
    with pytest.raises(RavdessError, match="is missing"):
        load_cache(broken)


def test_a_version_1_cache_is_named_and_rebuilt(prepared, tmp_path):
    root, out, _, _ = prepared
    old = tmp_path / "old"
    old.mkdir()
    np.savez_compressed(old / "ravdess_cache.npz", frames=np.zeros(1))
    (old / MANIFEST_NAME).write_text(json.dumps({"format": "mke-ravdess-cache", "version": 1, "complete": True,
                                                 "cache": "ravdess_cache.npz"}))
    with pytest.raises(RavdessError) as info:
        load_cache(old)
    assert str(info.value) == (f"RAVDESS cache {old / 'ravdess_cache.npz'} is in the old single-file format (version "
                               "1); this library reads version 3: rebuild it: run mke-exp prepare ravdess --raw DIR "
                               f"--out {old}.")
    assert prepare(root, old, frames=1, size=16, workers=1)["reused"] is False
    assert not (old / "ravdess_cache.npz").exists() and len(load_cache(old)["keys"]) == 36


def test_a_corrupt_cache_is_rebuilt_not_reused(prepared, tmp_path):
    root, out, manifest, _ = prepared
    damaged = tmp_path / "damaged"
    shutil.copytree(out, damaged)
    (damaged / "arrays" / "frames.npy").write_bytes(b"garbage")
    assert cache_store.current(CACHE_SPEC, damaged, manifest["params"], manifest["source_fingerprint"]) is None
    assert prepare(root, damaged, workers=1, shard_size=16)["reused"] is False  # same parameters: rebuilt
    for path in sorted((out / "arrays").iterdir()):
        np.testing.assert_array_equal(np.load(damaged / "arrays" / path.name), np.load(path))


# ---- splits ---------------------------------------------------------------------------------------
def test_actor_split_uses_actor_numbers_not_folder_order(tmp_path):
    splits = []
    for i, order in enumerate([(1, 2, 5, 9, 10), (10, 5, 1, 9, 2)]):
        root = make_ravdess_tree(tmp_path / f"raw{i}", actors=order, emotions=(1, 8), frames=1)
        pairs = scan(root).pairs
        masks = actor_split(np.array([p.name.actor for p in pairs]))
        splits.append({p.name.key: next(s for s, m in masks.items() if m[j]) for j, p in enumerate(pairs)})
    assert splits[0] == splits[1]
    by_actor = {int(key[-2:]): split for key, split in splits[0].items()}
    assert by_actor == {1: "test", 2: "test", 5: "val", 9: "train", 10: "train"}


def test_actor_split_masks_are_disjoint_and_cover():
    actors = np.arange(1, 25).repeat(3)
    masks = actor_split(actors)
    assert list(masks) == ["train", "val", "test"]
    assert (masks["train"].astype(int) + masks["val"] + masks["test"] == 1).all()
    assert set(actors[masks["test"]]) == {1, 2, 3, 4} and set(actors[masks["val"]]) == {5, 6, 7, 8}
    assert set(actors[masks["train"]]) == set(range(9, 25))
    fold = actor_split(actors, test=(9, 10, 11, 12), val=(13, 14, 15, 16))
    assert set(actors[fold["train"]]) == set(range(1, 9)) | set(range(17, 25))
    with pytest.raises(ValueError, match="both test and val"):
        actor_split(actors, test=(1, 2), val=(2, 3))


def test_random_split_is_seeded_and_sized():
    masks = random_split(1440, seed=19980427)
    assert [int(m.sum()) for m in masks.values()] == [864, 288, 288]
    assert (masks["train"].astype(int) + masks["val"] + masks["test"] == 1).all()
    same = random_split(1440, seed=19980427)
    assert all((masks[k] == same[k]).all() for k in masks)
    assert not (random_split(1440, seed=1)["test"] == masks["test"]).all()
    with pytest.raises(ValueError, match="summing to 1"):
        random_split(10, seed=0, fractions=(0.5, 0.2, 0.2))


def _synthetic_cache(rng, actors, logmel=None):
    """What ``load_cache`` returns: frames and log-mels as ``LazyRows`` of stored uint8 and float16 arrays."""
    n = len(actors)
    frames = rng.integers(0, 255, (n, 1, 3, 8, 8)).astype(np.uint8)
    logmel = rng.normal(-40, 10, (n, 1, 4, 5)).astype(np.float16) if logmel is None else logmel
    return dict(frames=LazyRows(frames, key="synthetic/frames"),
                logmel=LazyRows(logmel, key=f"synthetic/logmel/{hash(logmel.tobytes())}"),
                labels=np.arange(n) % 8, actors=np.asarray(actors),
                manifest=dict(params=dict(frames=1, size=8, n_mels=4, seconds=3.0)))


def test_logmel_statistics_come_from_the_training_clips_only(monkeypatch):
    """Canary: changing only the test (and validation) clips' log-mels leaves D_l and D_u unchanged."""
    from mke_experiments.data import ravdess as rv
    from mke_experiments.tasks.ravdess import RavdessData, load

    actors = np.repeat([1, 5, 9, 10, 11], 8)
    cache = _synthetic_cache(np.random.default_rng(0), actors)
    monkeypatch.setattr(rv, "load_cache", lambda folder: cache)
    data = RavdessData(labeled_actors=1)
    before = load(data, ".")
    held_out = np.isin(actors, [1, 5])
    canary = cache["logmel"].read()
    canary[held_out] = canary[held_out] * 50 + 1000  # a canary only in test/validation
    cache = _synthetic_cache(np.random.default_rng(0), actors, logmel=canary)
    after = load(data, ".")
    np.testing.assert_array_equal(np.asarray(before.unlabeled_beta), np.asarray(after.unlabeled_beta))
    np.testing.assert_array_equal(np.asarray(before.labeled_alpha), np.asarray(after.labeled_alpha))
    assert not np.allclose(np.asarray(before.test_beta), np.asarray(after.test_beta))
    train = canary[~held_out].astype(np.float64)
    z = (train - train.mean()) / (train.std() + 1e-6)
    assert abs(z.mean()) < 1e-6 and np.isclose(np.asarray(after.unlabeled_beta).std(), 1, atol=0.2)


# ---- the actor split as configuration ------------------------------------------------------------------------------
def _split(tmp_path, actors, *sets):
    from mke_experiments.config import resolve_config
    from mke_experiments.tasks import get_task
    from mke_experiments.testing.ravdess import write_synthetic_cache

    cache = tmp_path / "cache"
    if not cache.exists():
        write_synthetic_cache(cache, actors=actors)
    task = get_task("ravdess")
    return task.load(resolve_config(task, sets).data, cache)


def test_the_default_actor_split_is_the_one_fixed_in_code_before(tmp_path):
    """test 1–4, validation 5–8, D_l the lowest data.labeled_actors train actors, D_u the other train actors."""
    split = _split(tmp_path, range(1, 25))
    assert split.meta["actors"] == {"labeled": [9, 10, 11, 12], "unlabeled": list(range(13, 25)),
                                    "val": [5, 6, 7, 8], "test": [1, 2, 3, 4]}
    assert _split(tmp_path, None, "data.labeled_actors=2").meta["actors"]["labeled"] == [9, 10]


def test_the_actor_lists_choose_test_validation_and_d_l(tmp_path):
    split = _split(tmp_path, (3, 5, 9, 12, 19, 20), "data.test_actors=5,19", "data.val_actors=20",
                   "data.dl_actors=9,12")
    assert split.meta["actors"] == {"labeled": [9, 12], "unlabeled": [3], "val": [20], "test": [5, 19]}
    assert len(split.test_labels) == 16 and len(split.labels) == 16 and len(split.unlabeled_labels) == 8
    no_val = _split(tmp_path, None, "data.test_actors=5,19", "data.val_actors=", "data.dl_actors=3")  # "": none
    assert no_val.val_labels is None and no_val.meta["actors"]["unlabeled"] == [9, 12, 20]


def test_labeled_split_clip_cuts_the_train_actors_clips_and_keeps_test_actor_disjoint(tmp_path):
    """With one train actor, D_l and D_u share it (by clip, seeded); the test actor's clips never enter either."""
    sets = ("data.test_actors=19", "data.val_actors=", "data.labeled_split=clip")
    split = _split(tmp_path, (5, 19), *sets)
    assert split.meta["actors"] == {"labeled": [5], "unlabeled": [5], "val": [], "test": [19]}
    assert (len(split.labels), len(split.unlabeled_labels), len(split.test_labels)) == (2, 6, 8)  # 25 % of 8
    again = _split(tmp_path, None, *sets)
    other = _split(tmp_path, None, *sets, "data.split_seed=1")
    assert np.array_equal(split.labels, again.labels) and not np.array_equal(split.labels, other.labels)
    half = _split(tmp_path, None, *sets, "data.labeled_fraction=0.5")
    assert len(half.labels) == 4


def test_the_actor_fields_enter_the_record_only_when_set():
    from mke_experiments.config import record_dict, resolve_config
    from mke_experiments.tasks import get_task

    task = get_task("ravdess")
    assert set(record_dict(task.default_config)["data"]) == {"split", "labeled_actors", "split_seed"}
    chosen = record_dict(resolve_config(task, ("data.test_actors=19,20",)))["data"]
    assert chosen["test_actors"] == "19,20" and "val_actors" not in chosen
