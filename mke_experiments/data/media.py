"""What the audio-visual readers (RAVDESS, VGGSound/AudioSet clips) share: which frames to take, mono audio of
a fixed length, the log-mel spectrogram, and the clip parameters and library versions their manifests record.

Both readers compute the spectrogram the same way: 32 ms window and 10 ms hop (n_fft 512 and hop 160 at
16 kHz, ~100 frames per second), ``librosa.feature.melspectrogram`` then ``librosa.power_to_db`` with
``ref=1``, ``amin=1e-10`` and ``top_db=80`` (librosa's defaults). librosa and soundfile are imported
inside the functions that need them: only ``prepare`` and the clip readers do.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mke_experiments.data import cache as cache_store
from mke_theory.core.errors import MKEError

SAMPLE_RATE = 16000  # Hz, the readers' default
WIN_SECONDS, HOP_SECONDS = 0.032, 0.010  # n_fft 512 and hop 160 at 16 kHz
TOP_DB = 80.0  # librosa.power_to_db default
POWER_TO_DB = {"ref": 1.0, "amin": 1e-10, "top_db": TOP_DB}  # as the manifests record it
CLIP_RULES = "use frames >= 1, size >= 8, sample_rate >= 1000, n_mels >= 1 and seconds > 0"
_PACKAGES = {"av": "av (PyAV)", "cv2": "opencv-python-headless<5"}  # what to install for a module


def require(module: str, error: type = MKEError, purpose: str = "reading audio"):
    """``import module``; ``error`` saying that ``purpose`` needs it and how to install it, when it is missing."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise error(f"{purpose} needs {_PACKAGES.get(module, module)} ({e}); install it with "
                    "pip install -e .[experiments].") from None


def clip_params(error: type, frames: int, size: int, sample_rate: int, n_mels: int, seconds: float) -> dict:
    """The clip parameters every audio-visual ``prepare`` takes, checked, with the STFT sizes they imply.

    Parameters
    ----------
    error : the reader's error class, raised naming the first parameter out of range.
    frames, size : frames per clip and their side in pixels.
    sample_rate, n_mels, seconds : the audio's rate, mel bands and length.

    Returns
    -------
    dict with ``frames``, ``size``, ``sample_rate``, ``n_mels``, ``seconds``, ``n_fft``, ``hop_length``,
    ``n_samples`` and ``n_times`` (librosa centres frames: ``1 + n_samples // hop_length``), in this order:
    the start of the reader's ``manifest["params"]``.
    """
    checks = [("frames", frames, frames >= 1), ("size", size, size >= 8),
              ("sample_rate", sample_rate, sample_rate >= 1000), ("n_mels", n_mels, n_mels >= 1),
              ("seconds", seconds, seconds > 0)]
    for label, value, ok in checks:
        if not ok:
            raise error(f"prepare: {label}={value!r} is out of range; {CLIP_RULES}.")
    hop = int(round(HOP_SECONDS * sample_rate))
    n_samples = int(round(seconds * sample_rate))
    return {"frames": int(frames), "size": int(size), "sample_rate": int(sample_rate), "n_mels": int(n_mels),
            "seconds": float(seconds), "n_fft": int(round(WIN_SECONDS * sample_rate)), "hop_length": hop,
            "n_samples": n_samples, "n_times": 1 + n_samples // hop}


def frame_indices(n_frames: int, k: int) -> np.ndarray:
    """(k,) int64 indices of the centres of ``k`` equal segments of ``n_frames`` frames (repeats when
    there are fewer than ``k``)."""
    return np.minimum(((np.arange(k) + 0.5) * n_frames / k).astype(np.int64), n_frames - 1)


def fit_length(mono: np.ndarray, n: int, crop: str = "start") -> np.ndarray:
    """Zero-pad ``mono`` at the end to ``n`` samples, or cut it to ``n``: keep the ``"start"`` (a clip that
    already is its window) or the ``"centre"`` (RAVDESS, as Chumachenko et al.)."""
    if mono.shape[0] < n:
        return np.pad(mono, (0, n - mono.shape[0]))
    if crop == "centre":
        start = (mono.shape[0] - n) // 2
        return mono[start:start + n]
    return mono[:n]


def read_wav(path: Path, sample_rate: int, n_samples: int, crop: str,
             error: Callable[[Path, str], Exception]) -> np.ndarray:
    """(n_samples,) float32 mono audio of a sound file: soundfile, mean of the channels, ``librosa.resample``
    when the rate differs from ``sample_rate``, then ``fit_length(…, crop)``.

    Raises
    ------
    error(path, reason)
        when soundfile cannot read the file or it holds no sample.
    """
    soundfile = require("soundfile")
    try:
        samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)  # (n, channels)
    except (RuntimeError, OSError, ValueError, EOFError) as e:  # soundfile.LibsndfileError is a RuntimeError
        raise error(path, f"soundfile cannot read the audio ({e})") from None
    if samples.shape[0] == 0:
        raise error(path, "the audio has no samples")
    mono = samples.mean(axis=1)  # (n,)
    if rate != sample_rate:
        mono = require("librosa").resample(mono, orig_sr=rate, target_sr=sample_rate)  # keeps float32
    return fit_length(mono, n_samples, crop).astype(np.float32, copy=False)


def logmel(audio: np.ndarray, sample_rate: int = SAMPLE_RATE, n_mels: int = 64, hop: int = 160,
           n_fft: int = 512) -> np.ndarray:
    """Log-mel spectrogram in dB: ``librosa.feature.melspectrogram`` then ``power_to_db`` (``POWER_TO_DB``).

    Parameters
    ----------
    audio : (n_samples,) mono waveform (used as float32).
    hop, n_fft : the hop and window in samples, ``params["hop_length"]`` and ``params["n_fft"]`` of
        ``clip_params``.

    Returns
    -------
    float32 (1, n_mels, 1 + n_samples // hop)
    """
    librosa = require("librosa")
    power = librosa.feature.melspectrogram(y=np.asarray(audio, dtype=np.float32), sr=sample_rate, n_fft=n_fft,
                                           hop_length=hop, n_mels=n_mels)  # (M, T)
    db = librosa.power_to_db(power, **POWER_TO_DB)
    return db.astype(np.float32)[None]  # (1, M, T)


def stft_db(audio: np.ndarray, hop: int = 160, n_fft: int = 512) -> np.ndarray:
    """STFT magnitude spectrogram in dB: ``|librosa.stft|`` then ``amplitude_to_db`` (the reference and floor of
    ``POWER_TO_DB``, as amplitudes), for networks trained on STFT magnitudes rather than mel bands.

    Returns
    -------
    float32 (1, 1 + n_fft // 2, 1 + n_samples // hop)
    """
    librosa = require("librosa")
    magnitude = np.abs(librosa.stft(np.asarray(audio, dtype=np.float32), n_fft=n_fft, hop_length=hop))  # (F, T)
    db = librosa.amplitude_to_db(magnitude, ref=POWER_TO_DB["ref"], amin=np.sqrt(POWER_TO_DB["amin"]),
                                 top_db=POWER_TO_DB["top_db"])
    return db.astype(np.float32)[None]  # (1, F, T)


def library_versions(**libraries) -> dict:
    """``cache.library_versions`` with ``libraries`` first, then OpenCV, librosa, soundfile and libsndfile."""
    import cv2
    import librosa
    import soundfile

    return cache_store.library_versions(**libraries, opencv=cv2.__version__, librosa=librosa.__version__,
                                        soundfile=soundfile.__version__,
                                        libsndfile=soundfile.__libsndfile_version__)
