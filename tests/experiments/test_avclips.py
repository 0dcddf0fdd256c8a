"""VGGSound / AudioSet clips: PyAV decoding, the CAV-MAE layout, find_clips, the prepare cache, on real tiny mp4s."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

pytest.importorskip("av")
pytest.importorskip("cv2")
pytest.importorskip("librosa")
pytest.importorskip("soundfile")

from mke_experiments.data.avclips import (  # noqa: E402
    MANIFEST_NAME,
    AvClipError,
    ClipSource,
    cache_spec,
    decode_mp4,
    find_clips,
    load_cache,
    logmel,
    prepare,
    read_clip,
    read_wav_frames,
    split_labels,
)
from mke_experiments.data.rows import LazyRows  # noqa: E402
from mke_experiments.testing.avclips import COLOURS, GARBAGE, make_clip_tree, make_mp4, tone_hz, write_cavmae  # noqa: E402

SR = 16000


def peak_hz(audio: np.ndarray, sample_rate: int = SR) -> float:
    spectrum = np.abs(np.fft.rfft(audio))
    return float(np.argmax(spectrum) * sample_rate / len(audio))


def centre_rgb(frames: np.ndarray) -> np.ndarray:
    """(F, 3) mean colour of the top three quarters of each (3, S, S) frame (the fixture's band sits below)."""
    s = frames.shape[-1]
    return frames[:, :, : 3 * s // 4].reshape(frames.shape[0], 3, -1).mean(axis=2)


# ---- decode_mp4 -----------------------------------------------------------------------------------
@pytest.mark.parametrize("codec, layout, rate", [("mpeg4", "mono", 48000), ("libx264", "stereo", 44100),
                                                 ("mpeg4", "mono", 16000)])
def test_decode_mp4_gives_16k_mono_audio_and_square_rgb_frames(tmp_path, codec, layout, rate):
    path = make_mp4(tmp_path / "-abc_def-gh_000030.mp4", seconds=1.0, tone_hz=440, colour=(200, 30, 30),
                    sample_rate=rate, layout=layout, codec=codec)
    frames, audio = decode_mp4(path, frames=4, size=64, seconds=1.0)
    assert frames.shape == (4, 3, 64, 64) and frames.dtype == np.uint8
    assert audio.shape == (SR,) and audio.dtype == np.float32
    assert abs(peak_hz(audio) - 440) <= 2
    assert 0.2 < np.abs(audio).max() < 0.6  # the 0.3 sine, AAC ringing included; not summed over channels
    np.testing.assert_allclose(centre_rgb(frames), [[200, 30, 30]] * 4, atol=12)
    # the grey margins of the 64×48 picture are cropped away: every pixel is near the colour
    assert np.abs(frames.astype(int) - np.array([200, 30, 30])[None, :, None, None]).max() < 40


def test_decode_mp4_picks_frames_evenly_spaced_in_time(tmp_path):
    path = make_mp4(tmp_path / "clip_000000.mp4", seconds=2.0, fps=10, index_band=True)
    frames, _ = decode_mp4(path, frames=4, size=32, seconds=1.0)  # 10 frames in the window: times 0.0 … 0.9
    band = frames[:, 0, 28:].mean(axis=(1, 2))  # the grey band is 25 × frame index
    np.testing.assert_allclose(band, [25, 100, 150, 225], atol=10)  # nearest to 0.125, 0.375, 0.625, 0.875 s
    frames, _ = decode_mp4(path, frames=7, size=32, seconds=10.0)  # window = the 2 s the stream lasts
    band = frames[:, 0, 28:].mean(axis=(1, 2))
    np.testing.assert_allclose(band, [25, 100, 175, 0, 75, 150, 225], atol=10)  # frames 1, 4, 7, 10, 13, 16, 19


def test_decode_mp4_pads_and_cuts_the_audio_to_seconds(tmp_path):
    path = make_mp4(tmp_path / "clip_000000.mp4", seconds=1.0)
    _, long = decode_mp4(path, seconds=10.0)
    assert long.shape == (10 * SR,)
    assert np.abs(long[: SR - 500]).min() < 0.05 and np.abs(long[: SR - 500]).max() > 0.2
    assert not long[SR + 1024:].any()  # zeros after the (AAC-padded) second of sound
    _, short = decode_mp4(path, seconds=0.5)
    assert short.shape == (SR // 2,)
    np.testing.assert_array_equal(short, long[: SR // 2])  # the start is kept


def test_decode_mp4_errors_name_the_file(tmp_path):
    silent = make_mp4(tmp_path / "silent_000000.mp4", with_audio=False)
    with pytest.raises(AvClipError, match=r"silent_000000\.mp4: it has no audio stream"):
        decode_mp4(silent)
    garbage = tmp_path / "garbage_000000.mp4"
    garbage.write_bytes(GARBAGE)
    with pytest.raises(AvClipError, match=r"garbage_000000\.mp4: PyAV cannot open it"):
        decode_mp4(garbage)
    whole = make_mp4(tmp_path / "whole.mp4").read_bytes()
    truncated = tmp_path / "truncated_000000.mp4"
    truncated.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(AvClipError, match=r"truncated_000000\.mp4: PyAV cannot"):
        decode_mp4(truncated)


def test_logmel_shape_units_and_pitch():
    t = np.arange(SR) / SR
    low, high = (logmel((0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)) for hz in (300, 2000))
    assert low.shape == (1, 64, 1 + SR // 160) and low.dtype == np.float32
    assert low.max() - low.min() <= 80 + 1e-3  # power_to_db, top_db 80
    assert np.argmax(low[0].mean(axis=1)) < np.argmax(high[0].mean(axis=1))


# ---- CAV-MAE layout and find_clips ----------------------------------------------------------------
def test_cavmae_layout_gives_the_same_kind_of_output_as_the_mp4(tmp_path):
    name = "-abc_def-gh_000030"
    write_cavmae(tmp_path / "cav", name, label=2)
    (tmp_path / "mp4").mkdir()
    make_mp4(tmp_path / "mp4" / f"{name}.mp4", tone_hz=tone_hz(2), colour=COLOURS[2])
    source = find_clips(tmp_path / "cav", [name])[name]
    assert source.layout == "cavmae" and source.video is None
    assert source.audio == tmp_path / "cav" / "audio" / f"{name}.wav"
    assert [p.parent.name for p in source.frames] == [f"frame_{i}" for i in range(10)]
    frames, audio = read_wav_frames(source, frames=4, size=64, seconds=1.0)
    mp4_frames, mp4_audio = read_clip(find_clips(tmp_path / "mp4", [name])[name], frames=4, size=64, seconds=1.0)
    assert frames.shape == mp4_frames.shape == (4, 3, 64, 64) and frames.dtype == np.uint8
    assert audio.shape == mp4_audio.shape == (SR,) and audio.dtype == np.float32
    np.testing.assert_allclose(centre_rgb(frames), [COLOURS[2]] * 4, atol=12)  # BGR → RGB
    np.testing.assert_allclose(centre_rgb(frames), centre_rgb(mp4_frames), atol=15)
    assert abs(peak_hz(audio) - tone_hz(2)) <= 2 and abs(peak_hz(mp4_audio) - tone_hz(2)) <= 2
    # a 44.1 kHz stereo wav is averaged to mono and resampled
    import soundfile

    t = np.arange(44100) / 44100
    left = 0.3 * np.sin(2 * np.pi * tone_hz(2) * t)
    soundfile.write(str(source.audio), np.stack([left, np.zeros_like(left)], axis=1), 44100)
    _, resampled = read_wav_frames(source, seconds=2.0)
    assert resampled.shape == (2 * SR,) and abs(peak_hz(resampled[:SR]) - tone_hz(2)) <= 2
    assert 0.12 < np.abs(resampled[:SR]).max() < 0.18  # the mean of the two channels
    assert not resampled[SR + 10:].any()


def test_cavmae_clip_with_a_part_missing_fails_naming_it(tmp_path):
    write_cavmae(tmp_path, "only_frames_000000", label=0)
    (tmp_path / "audio" / "only_frames_000000.wav").unlink()
    source = find_clips(tmp_path, ["only_frames_000000"])["only_frames_000000"]
    with pytest.raises(AvClipError, match=r"audio/only_frames_000000\.wav does not"):
        read_wav_frames(source)
    with pytest.raises(AvClipError, match="no frames/frame_"):
        read_wav_frames(ClipSource("x", "cavmae", audio=tmp_path / "x.wav"))


def test_find_clips_looks_in_the_folder_below_it_then_the_cavmae_layout(tmp_path):
    clips = {"---g-f_I2yQ_000001": 0, "--0PQM4-hqg_000030": 1, "glLQrEijrKg_000300": 2, "gone_000000": 3}
    make_clip_tree(tmp_path, clips, missing=["gone_000000"], nested=["--0PQM4-hqg_000030"])
    write_cavmae(tmp_path, "cav-clip_000010", label=4)
    (tmp_path / "part_1" / "glLQrEijrKg_000300.mp4").write_bytes(b"a duplicate deeper down")
    found = find_clips(tmp_path, [*clips, "cav-clip_000010"])
    assert list(found) == ["---g-f_I2yQ_000001", "--0PQM4-hqg_000030", "glLQrEijrKg_000300", "cav-clip_000010"]
    assert found["---g-f_I2yQ_000001"].video == tmp_path / "---g-f_I2yQ_000001.mp4"
    assert found["--0PQM4-hqg_000030"].video == tmp_path / "part_1" / "--0PQM4-hqg_000030.mp4"
    assert found["glLQrEijrKg_000300"].video == tmp_path / "glLQrEijrKg_000300.mp4"  # the top level wins
    assert found["cav-clip_000010"].layout == "cavmae" and len(found["cav-clip_000010"].files) == 11
    assert "gone_000000" not in found
    with pytest.raises(AvClipError, match="does not exist"):
        find_clips(tmp_path / "nowhere", ["a"])
    with pytest.raises(AvClipError, match="not a file stem"):
        find_clips(tmp_path, ["../escape"])


# ---- prepare and load_cache -----------------------------------------------------------------------
CLIPS = {  # name → label index (colour and pitch of the fixture)
    "---g-f_I2yQ_000001": 0, "--0PQM4-hqg_000030": 1, "-abc_def-gh_000030": 2, "glLQrEijrKg_000300": 0,
    "gone-1_____000010": 1, "gone-2_____000020": 2, "broken_____000000": 1, "mute_______000040": 2,
}
MISSING = ("gone-1_____000010", "gone-2_____000020")
CORRUPT = "broken_____000000"
NO_AUDIO = "mute_______000040"
CAVMAE = {"cav-mae-one_000050": 3}
MULTI = ("people marching", "male speech, man speaking")


def clip_list() -> list[tuple[str, object]]:
    rows = [(name, f"class {label}") for name, label in {**CLIPS, **CAVMAE}.items()]
    rows[1] = (rows[1][0], MULTI)  # a multi-label AudioSet-style entry
    return rows + [rows[0]]  # an exact duplicate row is dropped


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    root = tmp_path_factory.mktemp("raw")
    make_clip_tree(root, CLIPS, missing=MISSING, corrupt=[CORRUPT], no_audio=[NO_AUDIO], nested=["-abc_def-gh_000030"])
    make_clip_tree(root, CAVMAE, layout="cavmae")
    return root


SMALL = dict(frames=3, size=32, n_mels=32, seconds=1.0, workers=1)


def test_prepare_caches_found_clips_lists_missing_and_skips_unreadable(raw, tmp_path):
    calls = []
    manifest = prepare(raw, tmp_path / "out", clip_list(), progress=calls.append, **SMALL)
    assert manifest["reused"] is False and sum(calls) == 9
    kept = ["---g-f_I2yQ_000001", "--0PQM4-hqg_000030", "-abc_def-gh_000030", "glLQrEijrKg_000300",
            "cav-mae-one_000050"]
    counts = manifest["counts"]
    assert (counts["wanted"], counts["found"], counts["missing"], counts["skipped"], counts["clips"]) == (9, 7, 2, 2, 5)
    assert counts["duplicate_rows"] == 1 and counts["layouts"] == {"mp4": 4, "cavmae": 1}
    assert manifest["missing"] == list(MISSING)
    reasons = {s["name"]: s for s in manifest["skipped"]}
    assert reasons[CORRUPT]["file"] == f"{CORRUPT}.mp4" and "PyAV cannot open it" in reasons[CORRUPT]["reason"]
    assert reasons[NO_AUDIO]["reason"].startswith("it has no audio stream")

    lazy = load_cache(tmp_path / "out", "vggsound")
    assert isinstance(lazy["frames"], LazyRows) and isinstance(lazy["logmel"], LazyRows)
    assert lazy["frames"].shape == (5, 3, 3, 32, 32) and lazy["frames"].stored_dtype == np.uint8
    assert lazy["logmel"].shape == (5, 1, 32, 101) and lazy["logmel"].stored_dtype == np.float16
    cache = {k: v.read() if isinstance(v, LazyRows) else v for k, v in lazy.items()}
    assert manifest["rows"] == 9  # one row per wanted clip; missing and unreadable ones are not valid
    assert np.load(tmp_path / "out" / "arrays" / "valid.npy").sum() == 5
    assert cache["names"].tolist() == kept
    assert cache["labels"].tolist() == ["class 0", "people marching|male speech, man speaking", "class 2",
                                        "class 0", "class 3"]
    assert split_labels(cache["labels"])[1] == MULTI
    for i, name in enumerate(kept):  # each clip keeps its class in both modalities
        label = {**CLIPS, **CAVMAE}[name]
        np.testing.assert_allclose(centre_rgb(cache["frames"][i]), [COLOURS[label]] * 3, atol=15)
    pitch = [np.argmax(cache["logmel"][i, 0].mean(axis=1)) for i in (0, 1, 2, 4)]  # labels 0, 1, 2, 3
    assert pitch == sorted(pitch) and len(set(pitch)) == 4
    on_disk = json.loads((tmp_path / "out" / MANIFEST_NAME).read_text())
    assert {k: v["shape"] for k, v in on_disk["arrays"].items() if k not in ("valid", "digest")} == {
        k: [9, *v.shape[1:]] for k, v in cache.items() if k != "manifest"}
    assert on_disk["complete"] is True and on_disk["format"] == cache_spec("vggsound").format
    assert on_disk["params"]["n_fft"] == 512 and on_disk["params"]["hop_length"] == 160
    assert {"av", "ffmpeg", "librosa", "opencv"} <= set(on_disk["versions"])


def test_prepare_reuses_a_current_cache_and_rebuilds_on_change(raw, tmp_path):
    out = tmp_path / "out"
    prepare(raw, out, clip_list(), **SMALL)
    stamp = (out / "arrays" / "frames.npy").stat().st_mtime_ns
    calls = []
    again = prepare(raw, out, clip_list(), progress=calls.append, **SMALL)
    assert again["reused"] is True and calls == [9]
    assert (out / "arrays" / "frames.npy").stat().st_mtime_ns == stamp
    assert prepare(raw, out, clip_list(), **{**SMALL, "size": 24})["reused"] is False  # other parameters
    assert load_cache(out)["frames"].shape == (5, 3, 3, 24, 24)
    relabelled = [(n, "another label") if n == "glLQrEijrKg_000300" else (n, lab) for n, lab in clip_list()]
    assert prepare(raw, out, relabelled, **{**SMALL, "size": 24})["reused"] is False  # other labels
    assert prepare(raw, out, clip_list()[:4], **{**SMALL, "size": 24})["reused"] is False  # other clips


def test_prepare_rebuilds_when_a_clip_arrives(raw, tmp_path):
    copy = tmp_path / "raw"
    shutil.copytree(raw, copy)
    out = tmp_path / "out"
    assert prepare(copy, out, clip_list(), **SMALL)["counts"]["missing"] == 2
    make_mp4(copy / f"{MISSING[0]}.mp4", tone_hz=tone_hz(1), colour=COLOURS[1])
    manifest = prepare(copy, out, clip_list(), **SMALL)
    assert manifest["reused"] is False and manifest["missing"] == [MISSING[1]] and manifest["counts"]["clips"] == 6


def test_load_cache_errors_name_the_file(raw, tmp_path):
    with pytest.raises(AvClipError, match=r"VGGSound cache folder .*nowhere does not exist; run mke-exp prepare "
                                          r"vggsound"):
        load_cache(tmp_path / "nowhere")
    out = tmp_path / "out"
    prepare(raw, out, clip_list(), name="audioset", **{**SMALL, "workers": 2})  # two workers, as the default
    assert load_cache(out, "audioset")["names"].shape == (5,)
    with pytest.raises(AvClipError, match=r"VGGSound manifest .*manifest\.json is corrupt or not a VGGSound cache"):
        load_cache(out, "vggsound")
    frames = out / "arrays" / "frames.npy"
    size = frames.stat().st_size
    frames.write_bytes(b"\0" * size)  # same size, not a .npy
    with pytest.raises(AvClipError, match=r"AudioSet cache array .*frames\.npy is not a readable \.npy file"):
        load_cache(out, "audioset")
    (out / "arrays" / "labels.npy").write_bytes(b"\x93NUMPY")  # an interrupted copy
    (out / "arrays" / "frames.npy").unlink()
    with pytest.raises(AvClipError, match=r"AudioSet cache array .*frames\.npy is missing; rebuild it: run mke-exp "
                                          r"prepare audioset"):
        load_cache(out, "audioset")
    assert prepare(raw, out, clip_list(), name="audioset", **SMALL)["reused"] is False  # a broken cache is rebuilt
    with pytest.raises(AvClipError, match="already holds another cache"):  # one data set per folder
        prepare(raw, out, clip_list(), name="vggsound", **SMALL)


def test_prepare_user_errors_are_one_clear_sentence(raw, tmp_path):
    with pytest.raises(AvClipError, match="listed twice with different labels"):
        prepare(raw, tmp_path / "out", [("a_000000", "x"), ("a_000000", "y")], **SMALL)
    with pytest.raises(AvClipError, match="without '\\|'"):
        prepare(raw, tmp_path / "out", [("a_000000", "x|y")], **SMALL)
    with pytest.raises(AvClipError, match="clip list is empty"):
        prepare(raw, tmp_path / "out", [], **SMALL)
    with pytest.raises(AvClipError, match=r"none of the 2 wanted VGGSound clips .* is in"):
        prepare(raw, tmp_path / "out", [("gone_000000", "x"), ("gone_000001", "y")], **SMALL)
    with pytest.raises(AvClipError, match=r"none of the 2 VGGSound clips found .* could be read \(broken"):
        prepare(raw, tmp_path / "out", [(CORRUPT, "x"), (NO_AUDIO, "y")], **SMALL)
    with pytest.raises(AvClipError, match="size=4 is out of range"):
        prepare(raw, tmp_path / "out", clip_list(), **{**SMALL, "size": 4})
    with pytest.raises(AvClipError, match="not a lower-case identifier"):
        cache_spec("VGG Sound")
    # no cache was published (the decoded shards of the unreadable clips stay in .partial for a rerun)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".partial"]
