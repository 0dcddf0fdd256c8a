"""The shared pieces of the data readers: media (frame sampling, audio, the one log-mel) and cache.check_out_dir."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mke_experiments.data import cache, media
from mke_theory.core.errors import MKEError


class _Oops(MKEError):
    pass


def _fail(path, reason):
    return AssertionError(f"{path}: {reason}")


def _recipe(path, sample_rate: int, n_samples: int, n_mels: int, crop: str) -> np.ndarray:
    """Both readers' log-mel as they computed it before ``media``, written out with librosa directly."""
    librosa, soundfile = pytest.importorskip("librosa"), pytest.importorskip("soundfile")
    samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    mono = samples.mean(axis=1)
    if rate != sample_rate:
        mono = librosa.resample(mono, orig_sr=rate, target_sr=sample_rate)
    if len(mono) < n_samples:
        mono = np.pad(mono, (0, n_samples - len(mono)))
    start = (len(mono) - n_samples) // 2 if crop == "centre" else 0
    mono = mono[start:start + n_samples]
    power = librosa.feature.melspectrogram(y=mono, sr=sample_rate, n_fft=int(round(0.032 * sample_rate)),
                                           hop_length=int(round(0.010 * sample_rate)), n_mels=n_mels)
    return librosa.power_to_db(power, ref=1.0, amin=1e-10, top_db=80.0).astype(np.float32)[None]


def _logmel(audio, params: dict) -> np.ndarray:
    return media.logmel(audio, params["sample_rate"], params["n_mels"], params["hop_length"], params["n_fft"])


# ---- media ----------------------------------------------------------------------------------------
def test_frame_indices_are_segment_centres_and_repeat_for_short_clips():
    assert media.frame_indices(10, 4).tolist() == [1, 3, 6, 8]
    assert media.frame_indices(2, 4).tolist() == [0, 0, 1, 1]
    assert media.frame_indices(10, 1).tolist() == [5]


def test_fit_length_pads_at_the_end_or_keeps_the_start_or_the_centre():
    x = np.arange(1, 7, dtype=np.float32)
    assert media.fit_length(x, 4).tolist() == [1, 2, 3, 4]
    assert media.fit_length(x, 4, "centre").tolist() == [2, 3, 4, 5]
    assert media.fit_length(x, 8, "centre").tolist() == [1, 2, 3, 4, 5, 6, 0, 0]


def test_clip_params_derive_the_stft_sizes_and_raise_the_readers_error():
    params = media.clip_params(_Oops, frames=4, size=48, sample_rate=16000, n_mels=40, seconds=3.0)
    assert (params["n_fft"], params["hop_length"], params["n_samples"], params["n_times"]) == (512, 160, 48000, 301)
    with pytest.raises(_Oops, match=r"size=4 is out of range; use frames >= 1"):
        media.clip_params(_Oops, frames=4, size=4, sample_rate=16000, n_mels=40, seconds=3.0)


def test_require_names_the_missing_package_and_the_install():
    assert media.require("json") is json
    with pytest.raises(_Oops, match=r"testing needs mke_no_such_module \(.*\); install it with pip install"):
        media.require("mke_no_such_module", _Oops, "testing")


def test_ravdess_cache_holds_the_media_logmel_of_each_wav(tmp_path):
    for module in ("cv2", "librosa", "soundfile", "skimage"):
        pytest.importorskip(module)
    from mke_experiments.data import ravdess
    from mke_experiments.testing.ravdess import make_ravdess_tree

    root = make_ravdess_tree(tmp_path / "raw", actors=(1,), emotions=(1, 4))  # 0.3 s at 48 kHz
    ravdess.prepare(root, tmp_path / "out", frames=1, size=16, n_mels=20, seconds=0.2)  # resampled, centre-cut
    stored = ravdess.load_cache(tmp_path / "out")
    params = stored["manifest"]["params"]
    assert len(stored["keys"]) == 2
    for key, row in zip(stored["keys"], stored["logmel"].read()):  # stored as float16
        wav = root / "Actor_01" / f"03-{key}.wav"
        audio = media.read_wav(wav, params["sample_rate"], params["n_samples"], "centre", _fail)
        np.testing.assert_array_equal(row, _logmel(audio, params).astype(np.float16))
        np.testing.assert_array_equal(row, _recipe(wav, params["sample_rate"], params["n_samples"], 20,
                                                   "centre").astype(np.float16))


def test_avclips_cache_holds_the_media_logmel_of_each_clip(tmp_path):
    for module in ("av", "cv2", "librosa", "soundfile"):
        pytest.importorskip(module)
    from mke_experiments.data import avclips
    from mke_experiments.testing.avclips import make_clip_tree, write_cavmae

    raw = make_clip_tree(tmp_path / "raw", {"tone-one_000000": 1})
    write_cavmae(raw, "cav-two_000010", label=2, sample_rate=22050)  # 1 s: resampled, the start kept
    avclips.prepare(raw, tmp_path / "out", [("tone-one_000000", "a"), ("cav-two_000010", "b")], frames=2,
                    size=16, n_mels=24, seconds=0.5)
    stored = avclips.load_cache(tmp_path / "out")
    params = stored["manifest"]["params"]
    assert stored["names"].tolist() == ["tone-one_000000", "cav-two_000010"]
    stored_logmel = stored["logmel"].read()  # float16
    _, audio = avclips.decode_mp4(raw / "tone-one_000000.mp4", 2, 16, params["sample_rate"], 0.5)
    np.testing.assert_array_equal(stored_logmel[0], _logmel(audio, params).astype(np.float16))
    wav = raw / "audio" / "cav-two_000010.wav"
    audio = media.read_wav(wav, params["sample_rate"], params["n_samples"], "start", _fail)
    np.testing.assert_array_equal(stored_logmel[1], _logmel(audio, params).astype(np.float16))
    np.testing.assert_array_equal(stored_logmel[1], _recipe(wav, params["sample_rate"], params["n_samples"],
                                                            24, "start").astype(np.float16))
    assert avclips.logmel is media.logmel  # the reader's public name is the one function


# ---- cache.check_out_dir -------------------------------------------------------------------------
def test_check_out_dir_refuses_a_file(tmp_path):
    from mke_experiments.testing.cache import SPEC, ToyError

    (tmp_path / "file").write_text("")
    assert cache.check_out_dir(SPEC, tmp_path / "new") == tmp_path / "new"
    with pytest.raises(ToyError, match=r"cache folder .*file is a file; pass a folder to --out\."):
        cache.check_out_dir(SPEC, tmp_path / "file")
