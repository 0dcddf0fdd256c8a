"""``prepare ravdess`` and ``run ravdess`` on the real RAVDESS files in ``../shared/realdata/ravdess`` (see its
PROVENANCE.md): read in place, never copied into the repository; the cache goes to a temporary folder. Every test
skips when the folder is absent (a user's clone, a CI machine without it), as test_realdata.py does.

The real tree: 7 original audio-visual mp4s of actor 05 (1280×720 H.264 + AAC) with their speech wavs, one video-only
mp4 of actor 05 (``02-…``, which carries a silent AAC track) whose key also has an audio-visual mp4 and a wav, one
re-encoded mp4 of actor 19 (720×720 MPEG-4 Part 2, no audio stream) with its original wav, and 8 unpaired speech wavs
(5 stereo with identical channels, the shortest and the longest of the 1440). Every wav has a ``FLLR`` chunk before
``data`` and ``LIST``/``bext``/``_PMX`` chunks after it.

What each guards: the pairing (01- with 03-, never the 02- file; each row's frames and log-mel are those of its own
files), the counts in the manifest, faces found in every frame, the wav chunk layouts and stereo read as its mono
mean, the seeking video reader returning OpenCV's sequential frames on H.264 and MPEG-4, the crop length chosen
from the durations, and one CPU epoch of ``run ravdess`` with an actor-disjoint split set through the actor fields.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("av")
pytest.importorskip("cv2")
pytest.importorskip("librosa")
pytest.importorskip("soundfile")

from mke_experiments.cli import cli  # noqa: E402
from mke_experiments.data import media  # noqa: E402
from mke_experiments.data import ravdess as rv  # noqa: E402
from mke_experiments.testing.ravdess import wav_chunks  # noqa: E402

REAL = Path(__file__).resolve().parents[3] / "shared" / "realdata" / "ravdess"
pytestmark = pytest.mark.skipif(not REAL.is_dir(), reason="needs ../shared/realdata/ravdess (real files)")

PAIRED = {"01-01-01-02-01-05", "01-03-01-01-02-05", "01-04-01-02-01-05", "01-04-02-02-02-05", "01-06-01-02-02-05",
          "01-06-02-02-02-05", "01-08-01-02-01-05", "01-08-02-01-01-19"}  # the keys with an 01- mp4 and a 03- wav
VIDEO_ONLY_KEY = "01-06-01-02-02-05"  # 02-01-06-01-02-02-05.mp4 sits beside 01-01-06-01-02-02-05.mp4 and its wav
REENCODED = "Actor_19/01-01-08-02-01-01-19.mp4"
STEREO = ("Actor_01/03-01-02-01-01-02-01.wav", "Actor_01/03-01-08-01-02-02-01.wav",
          "Actor_05/03-01-02-01-02-02-05.wav", "Actor_20/03-01-03-01-02-01-20.wav",
          "Actor_20/03-01-06-01-01-02-20.wav")  # PROVENANCE.md: 2 channels, L == R
SMALL_MODEL = ("--set", "model.width=4", "--set", "model.hidden=16")


@pytest.fixture(scope="module")
def real_cache(tmp_path_factory):
    """``mke-exp prepare ravdess`` on the real tree, read in place, with the default settings, at one worker."""
    out = tmp_path_factory.mktemp("ravdess_real") / "cache"
    result = CliRunner().invoke(cli, ["prepare", "ravdess", "--raw", str(REAL), "--out", str(out), "--workers", "1"])
    assert result.exit_code == 0, result.output
    return out, json.loads((out / rv.MANIFEST_NAME).read_text()), rv.load_cache(out)


# ---- prepare: pairs, counts, faces ---------------------------------------------------------------------------------
def test_prepare_pairs_the_real_files_and_counts_what_it_left_out(real_cache):
    _, manifest, cache = real_cache
    counts = manifest["counts"]
    assert set(cache["keys"].tolist()) == PAIRED and len(cache["keys"]) == 8
    assert (counts["clips"], counts["pairs"], counts["skipped"], counts["invalid"]) == (8, 8, 0, 0)
    assert counts["ignored_video_only"] == 1  # the 02- mp4: counted, not paired, not unpaired
    assert counts["per_actor"] == {"05": 7, "19": 1}
    assert sorted(manifest["report"]["unpaired"]) == sorted(
        p.relative_to(REAL).as_posix() for p in REAL.glob("Actor_*/03-*.wav")
        if p.stem[3:] not in PAIRED)  # every wav without an 01- mp4 (8), and no mp4
    assert len(manifest["report"]["unpaired"]) == 8
    assert manifest["params"]["seconds"] == 3.7 and cache["logmel"].shape == (8, 1, 40, 371)


def test_faces_are_found_in_every_frame_of_the_real_clips(real_cache):
    _, manifest, _ = real_cache
    assert manifest["faces"] == {"frames": 32, "found": 32, "not_found": 0, "clips_with_centre_crop": []}


def test_the_video_only_file_carries_a_silent_track_and_is_never_paired(tmp_path):
    """The 02- mp4 has an audio stream (silent), so "has audio" cannot tell it from an 01- mp4: the name must. A tree
    holding only it and the wav of its key has no pair (a pairing by key alone would pair them)."""
    import av

    video_only = REAL / "Actor_05" / f"02-{VIDEO_ONLY_KEY}.mp4"
    with av.open(str(video_only)) as container:
        assert [s.type for s in container.streams] == ["video", "audio"]
        samples = np.concatenate([f.to_ndarray() for f in container.decode(audio=0)], axis=1)
    assert samples.size > 100_000 and np.abs(samples).max() == 0.0  # a track of exact zeros
    assert all(pair.video.name.startswith("01-") for pair in rv.scan(REAL).pairs)

    actor = tmp_path / "raw" / "Actor_05"
    actor.mkdir(parents=True)
    for name in (video_only.name, f"03-{VIDEO_ONLY_KEY}.wav"):
        os.symlink(REAL / "Actor_05" / name, actor / name)  # a link, not a copy
    found = rv.scan(tmp_path / "raw")
    assert found.pairs == [] and found.ignored["video_only"] == 1
    assert [p.name for p in found.unpaired] == [f"03-{VIDEO_ONLY_KEY}.wav"]
    with pytest.raises(rv.RavdessError, match="has no audio-visual speech pair"):
        rv.prepare(tmp_path / "raw", tmp_path / "out", workers=1)


def test_each_row_holds_the_frames_of_its_own_01_mp4_and_the_log_mel_of_its_own_wav(real_cache):
    """Recomputed from the files named by the row's key: a pair built with the 02- mp4 (another take) or rows in
    another order than the keys would differ. Covers the re-encoded actor-19 mp4 (no audio stream) with its wav."""
    _, manifest, cache = real_cache
    params = manifest["params"]
    cv2, detector = rv._face_detector()
    frames, logmel = cache["frames"].read(), cache["logmel"].read()
    for row, key in enumerate(cache["keys"].tolist()):
        actor = f"Actor_{key[-2:]}"
        images = rv._read_frames(REAL / actor / f"01-{key}.mp4", params["frames"])
        crops = np.stack([rv._crop_face(cv2, detector, image, params["size"])[0] for image in images])
        np.testing.assert_array_equal(frames[row], crops, err_msg=key)
        audio = media.read_wav(REAL / actor / f"03-{key}.wav", params["sample_rate"], params["n_samples"], "centre",
                               rv._ClipError)
        expected = media.logmel(audio, params["sample_rate"], params["n_mels"], params["hop_length"], params["n_fft"])
        np.testing.assert_array_equal(logmel[row], expected.astype(np.float16), err_msg=key)
    other_take = rv._read_frames(REAL / "Actor_05" / f"02-{VIDEO_ONLY_KEY}.mp4", params["frames"])
    own_take = rv._read_frames(REAL / "Actor_05" / f"01-{VIDEO_ONLY_KEY}.mp4", params["frames"])
    assert not all(np.array_equal(a, b) for a, b in zip(other_take, own_take))  # the check above can tell them apart
    row = cache["keys"].tolist().index("01-08-02-01-01-19")
    assert cache["actors"][row] == 19 and frames[row].std() > 10  # the re-encoded clip: real pixels, not a blank


def test_the_seeking_reader_gives_the_frames_opencv_decodes_sequentially():
    """On the real H.264 (a keyframe every 29 frames) and MPEG-4 (every 12) clips, the PyAV reader's keyframe seeks
    return the very pixels of OpenCV's decode of every frame from the start (the reader before issue 25), so the
    cache bytes did not change with the faster reader."""
    import cv2

    for path in sorted(REAL.glob("Actor_*/0*.mp4")):
        capture = cv2.VideoCapture(str(path))
        every = []
        while True:
            ok, image = capture.read()
            if not ok:
                break
            every.append(image)
        capture.release()
        for k in (4, 15):
            frames = rv._read_frames(path, k)
            expected = [every[i] for i in media.frame_indices(len(every), k)]
            assert all(np.array_equal(a, b) for a, b in zip(frames, expected)), (path.name, k)


# ---- wavs: chunk layouts, stereo ------------------------------------------------------------------------------------
def _data_chunk_samples(path: Path) -> np.ndarray:
    """(n, channels) float32 of the ``data`` chunk's int16 bytes, found by walking the chunks, not by a library."""
    raw = path.read_bytes()
    channels = int.from_bytes(raw[22:24], "little")  # fmt is the first chunk: its channel count at byte 22
    offset = 12
    for chunk_id, size in wav_chunks(path):
        if chunk_id == b"data":
            data = np.frombuffer(raw[offset + 8:offset + 8 + size - size % (2 * channels)], "<i2")
            return (data.reshape(-1, channels) / 32768.0).astype(np.float32)
        offset += 8 + size + (size & 1)
    raise AssertionError(f"{path} has no data chunk")


def test_every_real_wav_has_fllr_before_data_and_metadata_after_it_and_only_data_is_read():
    """read_wav returns exactly the data chunk's samples (mixed to mono): reading FLLR's filler or the LIST/bext/_PMX
    chunks as audio would change the length or the values."""
    wavs = sorted(REAL.glob("Actor_*/03-*.wav"))
    assert len(wavs) == 16
    for path in wavs:
        assert [c for c, _ in wav_chunks(path)] == [b"fmt ", b"FLLR", b"data", b"LIST", b"bext", b"_PMX"], path.name
        samples = _data_chunk_samples(path)  # (n, channels)
        mono = media.read_wav(path, 48000, samples.shape[0], "centre", rv._ClipError)  # full length: nothing cut
        np.testing.assert_allclose(mono, samples.mean(axis=1), rtol=0, atol=1e-7, err_msg=path.name)


def test_stereo_wavs_are_read_as_their_mono_mean_which_equals_either_channel():
    """Five of the 1440 are stereo with identical channels: mono equals the left and the right channel, and it is as
    long as the file (interleaved samples read as mono would be twice as long and alternate L, R)."""
    import soundfile

    for name in STEREO:
        path = REAL / name
        both, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
        assert both.shape[1] == 2 and rate == 48000 and np.array_equal(both[:, 0], both[:, 1]), name
        mono = media.read_wav(path, 48000, both.shape[0], "centre", rv._ClipError)
        assert mono.shape == (both.shape[0],)
        np.testing.assert_array_equal(mono, both[:, 0], err_msg=name)
        np.testing.assert_array_equal(mono, _data_chunk_samples(path)[:, 1], err_msg=name)


# ---- the crop length ------------------------------------------------------------------------------------------------
def _voiced_span(mono: np.ndarray, rate: int) -> tuple[float, float]:
    """Seconds of the first and last 10 ms frame whose RMS is within 20 dB of the clip's loudest frame."""
    import librosa

    rms = librosa.feature.rms(y=mono, frame_length=rate // 50, hop_length=rate // 100)[0]
    loud = np.flatnonzero(20 * np.log10(np.maximum(rms, 1e-10) / rms.max()) > -20)
    return loud[0] / 100, (loud[-1] + 1) / 100


def _cut(duration: float, span: tuple[float, float], seconds: float) -> float:
    """Voiced seconds a centre crop of ``seconds`` cuts from a clip (prepare pads a shorter clip, cuts nothing)."""
    start = max(0.0, (duration - seconds) / 2)
    return max(0.0, start - span[0]) + max(0.0, span[1] - (start + min(seconds, duration)))


def test_the_default_crop_keeps_the_voiced_part_of_every_real_wav_which_3_s_did_not():
    """The measurement behind prepare.seconds=3.7 (docs/experiments.md): the 16 real wavs last 2.936–5.272 s, the
    shortest and longest of the 1440; 3.0 s cut 0.19 s of the longest clip's speech, 3.7 s cuts none of any."""
    import soundfile

    from mke_experiments.tasks.ravdess import RavdessPrepare

    durations, cuts = [], {3.0: [], RavdessPrepare().seconds: []}
    for path in sorted(REAL.glob("Actor_*/03-*.wav")):
        both, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
        mono = both.mean(axis=1)
        durations.append(len(mono) / rate)
        for seconds in cuts:
            cuts[seconds].append(_cut(len(mono) / rate, _voiced_span(mono, rate), seconds))
    assert (round(min(durations), 3), round(max(durations), 3)) == (2.936, 5.272)
    assert max(cuts[RavdessPrepare().seconds]) == 0.0
    assert 0.1 < max(cuts[3.0]) < 0.3


# ---- run: an actor-disjoint split set through the actor fields -----------------------------------------------------
def test_the_default_actor_split_on_the_real_cache_names_the_fields_and_the_actors_it_holds(real_cache):
    out, _, _ = real_cache
    base = ["run", "ravdess", "--data", str(out), "--epochs", "1", "--seeds", "0", "--device", "cpu"]
    default = CliRunner().invoke(cli, base)
    assert default.exit_code == 1 and "Traceback" not in default.output
    assert "holds actors 5, 19 and none of the test actors 1, 2, 3, 4: set data.test_actors" in default.output
    one_train_actor = CliRunner().invoke(cli, [*base, "--set", "data.test_actors=19", "--set", "data.val_actors="])
    assert one_train_actor.exit_code == 1
    assert "of which 5 is the only train actor" in one_train_actor.output  # actor 5 alone: D_l takes it, D_u gets none
    assert "leaves none for D_u" in one_train_actor.output and "data.labeled_split=clip" in one_train_actor.output


def test_one_cpu_epoch_of_run_ravdess_on_the_real_cache_with_an_actor_disjoint_test_set(real_cache, tmp_path):
    """Test actor 19, train actor 5 (D_l and D_u by clip: one train actor cannot be split by actor), no validation
    actor left (selection: the last epoch)."""
    from mke_experiments.config import resolve_config
    from mke_experiments.tasks import get_task
    from mke_theory.core.records import read_records

    out, _, _ = real_cache
    split_args = ("data.test_actors=19", "data.val_actors=", "data.labeled_split=clip", "train.selection=last")
    split = get_task("ravdess").load(resolve_config(get_task("ravdess"), split_args).data, out)
    assert split.meta["actors"] == {"labeled": [5], "unlabeled": [5], "val": [], "test": [19]}
    assert (len(split.labels), len(split.unlabeled_labels), len(split.test_labels)) == (1, 6, 1)
    sets = [item for pair in split_args for item in ("--set", pair)]
    result = CliRunner().invoke(cli, ["run", "ravdess", "--data", str(out), "--epochs", "1", "--seeds", "0",
                                      "--device", "cpu", "--methods", "teacher,mm_student", *sets, *SMALL_MODEL,
                                      "--out", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    assert "| ravdess | mm_student |" in result.output
    records = read_records(tmp_path / "runs")
    assert len(records) == 2 and all(r["config"]["data"]["test_actors"] == "19" for r in records)
    assert all(r["config"]["data"]["labeled_split"] == "clip" for r in records)
