"""Audio-visual YouTube clips (VGGSound, AudioSet): find, decode and cache them for the MKE tasks.

The teacher hears the audio (modality α); the student sees and hears (α + β). On disk
(data-formats reference, section A3) a clip is named ``{ytid}_{start:06d}``, e.g.
``---g-f_I2yQ_000001`` (YouTube ids may start with ``-``), and holds the 10 s window
[start, start + 10). Two layouts are read, per clip, in this order:

* ``RAW/<name>.mp4``, or ``RAW/**/<name>.mp4`` in any sub-folder (the official VGGSound download);
  decoded with PyAV;
* the CAV-MAE layout: ``RAW/audio/<name>.wav`` (16 kHz mono) and ``RAW/frames/frame_{0..9}/<name>.jpg``
  (10 frames spread evenly over the clip).

Clips found in neither are *missing* (10–20 % of YouTube ids are gone): they are counted and listed,
never fatal. ``prepare`` stores every wanted clip as one row of a cache of memory-mappable arrays (``cache``,
format version 3)::

    OUT/arrays/frames.npy   uint8   (n_wanted, frames, 3, size, size)   RGB, centre square
    OUT/arrays/logmel.npy   float16 (n_wanted, 1, n_mels, n_times)      dB, librosa.power_to_db
    OUT/arrays/names.npy    str     (n_wanted,)                         "{ytid}_{start:06d}"
    OUT/arrays/labels.npy   str     (n_wanted,)                         labels joined with "|"
    OUT/arrays/valid.npy    bool    (n_wanted,)                         False: missing or unreadable
    OUT/arrays/digest.npy   |S32    (n_wanted,)                         sha256 of the clip's files' bytes
    OUT/checksums.json      the checksum of every shard of rows of every array (``mke-exp verify``)
    OUT/manifest.json       parameters, counts, missing clips, skipped files and why, versions

``load_cache`` returns the valid rows only: names and labels in memory, frames and logmel as ``LazyRows``.

**Labels.** ``labels[i]`` holds the clip's labels joined with ``"|"`` (``LABEL_SEPARATOR``): a VGGSound
display name such as ``"male speech, man speaking"`` stays one label (commas are kept), an AudioSet
entry ``("/m/09x0r", "/t/dd00088")`` becomes ``"/m/09x0r|/t/dd00088"`` and an empty tuple ``""``.
``split_labels`` turns the array back into tuples. Integer labels are stored as their decimal
strings. A label may not contain ``"|"`` or be empty.

Clips keep the order of the ``clips`` list given to ``prepare`` (the CSV's order). Only ``prepare``
and the readers need PyAV, OpenCV, librosa and soundfile (``pip install -e .[experiments]``).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mke_experiments.data import cache as cache_store
from mke_experiments.data import media
from mke_experiments.data.cache import Column
from mke_experiments.data.media import logmel
from mke_theory.core.errors import MKEError

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
CACHE_VERSION = 3  # 3: content digests (digest.npy, checksums.json, content_digest)
CACHE_ARRAYS = ("frames", "logmel", "names", "labels")
SMALL_ARRAYS = frozenset({"names", "labels"})  # read into memory by load_cache; frames, logmel lazy
LABEL_SEPARATOR = "|"
N_CAVMAE_FRAMES = 10  # CAV-MAE extracts frame_0 … frame_9
DATASETS = {"vggsound": "VGGSound", "audioset": "AudioSet"}  # how messages name the known data sets

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
EXPECTED_LAYOUT = ("expected RAW/<clip>.mp4 (or RAW/**/<clip>.mp4), or the CAV-MAE layout RAW/audio/<clip>.wav "
                   "with RAW/frames/frame_{0..9}/<clip>.jpg")


class AvClipError(MKEError):
    """An audio-visual clip, folder, clip list or cache the user supplied is not what the reader expects."""


def cache_spec(name: str = "vggsound") -> cache_store.CacheSpec:
    """The cache contract of a clip cache, e.g. ``cache_spec("audioset")``.

    ``name`` is a lower-case identifier (``vggsound``, ``audioset``, or a subset such as
    ``vggsound_tiny``); it names the data set in messages, the manifest's format and the rebuild command.
    """
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise AvClipError(f"cache name {name!r} is not a lower-case identifier such as 'vggsound' or 'audioset'.")
    return cache_store.CacheSpec(dataset=DATASETS.get(name, name), format=f"mke-{name}-avclips-cache",
                                 version=CACHE_VERSION, arrays=lambda manifest: CACHE_ARRAYS, small=SMALL_ARRAYS,
                                 error=AvClipError, hint=f"run mke-exp prepare {name} --raw DIR --out DIR",
                                 manifest_name=MANIFEST_NAME)


@dataclass(frozen=True)
class ClipSource:
    """Where one clip lies: an mp4 (``layout="mp4"``) or a CAV-MAE wav plus frame jpgs (``layout="cavmae"``).

    ``frames`` holds the CAV-MAE jpgs that exist, in frame order; ``audio`` may be ``None`` there when
    only frames were found (reading then fails with the reason).
    """

    name: str
    layout: str  # "mp4" or "cavmae"
    video: Path | None = None  # the mp4
    audio: Path | None = None  # the CAV-MAE wav
    frames: tuple[Path, ...] = ()  # the CAV-MAE jpgs

    @property
    def files(self) -> list[Path]:
        """Every file the clip is read from (for fingerprints and reports)."""
        return [p for p in (self.video, self.audio) if p is not None] + list(self.frames)


# ---- find -----------------------------------------------------------------------------------------
def _check_name(name) -> str:
    if not isinstance(name, str) or not name or name.startswith(".") or "/" in name or "\\" in name:
        raise AvClipError(f"clip name {name!r} is not a file stem such as '---g-f_I2yQ_000001' "
                          "({ytid}_{start:06d}, no folder part).")
    return name


def find_clips(raw_dir: str | os.PathLike, names: Iterable[str]) -> dict[str, ClipSource]:
    """Locate each wanted clip under ``raw_dir``.

    Per name: ``raw_dir/<name>.mp4``; else ``raw_dir/**/<name>.mp4`` (the first in sorted path order,
    the tree is walked once); else the CAV-MAE files ``raw_dir/audio/<name>.wav`` and
    ``raw_dir/frames/frame_{i}/<name>.jpg``, i = 0..9 (found when either exists); else missing.

    Returns
    -------
    dict name → ClipSource, in the order of ``names``, holding the found clips only: a wanted name
    absent from it is missing.

    Raises
    ------
    AvClipError
        when ``raw_dir`` is not a folder or a name is not a plain file stem.
    """
    raw_dir = Path(raw_dir)
    if not raw_dir.exists():
        raise AvClipError(f"clip folder {raw_dir} does not exist; {EXPECTED_LAYOUT}.")
    if not raw_dir.is_dir():
        raise AvClipError(f"clip folder {raw_dir} is a file, not a folder; {EXPECTED_LAYOUT}.")
    names = [_check_name(n) for n in names]
    nested: dict[str, Path] | None = None  # stem -> first mp4 anywhere below raw_dir, built on first need
    frame_dirs = [raw_dir / "frames" / f"frame_{i}" for i in range(N_CAVMAE_FRAMES)]
    found: dict[str, ClipSource] = {}
    for name in names:
        if name in found:
            continue
        mp4 = raw_dir / f"{name}.mp4"
        if mp4.is_file():
            found[name] = ClipSource(name, "mp4", video=mp4)
            continue
        if nested is None:
            nested = {}
            for root, dirs, files in os.walk(raw_dir):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                if root == str(raw_dir) and "frames" in dirs and frame_dirs[0].is_dir():
                    dirs.remove("frames")  # CAV-MAE's jpgs: millions of files and no mp4
                for file in sorted(files):
                    if file.endswith(".mp4") and not file.startswith("."):
                        nested.setdefault(file[:-4], Path(root) / file)
        if name in nested:
            found[name] = ClipSource(name, "mp4", video=nested[name])
            continue
        wav = raw_dir / "audio" / f"{name}.wav"
        jpgs = tuple(p for p in (d / f"{name}.jpg" for d in frame_dirs) if p.is_file())
        if wav.is_file() or jpgs:
            found[name] = ClipSource(name, "cavmae", audio=wav if wav.is_file() else None, frames=jpgs)
    return found


# ---- decode ---------------------------------------------------------------------------------------
def _square(cv2, rgb: np.ndarray, size: int) -> np.ndarray:
    """(3, size, size) uint8 of the centre square of an (H, W, 3) RGB image."""
    height, width = rgb.shape[:2]
    side = min(height, width)
    y0, x0 = (height - side) // 2, (width - side) // 2
    crop = np.ascontiguousarray(rgb[y0:y0 + side, x0:x0 + side])
    crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if side >= size else cv2.INTER_LINEAR)
    return np.ascontiguousarray(crop.transpose(2, 0, 1))  # (3, S, S)


def _import(module: str):
    return media.require(module, AvClipError, "reading audio-visual clips")


def decode_mp4(path: str | os.PathLike, frames: int = 4, size: int = 64, sample_rate: int = 16000,
               seconds: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """Decode one mp4 with PyAV into evenly spaced RGB frames and mono audio.

    Audio: the first audio stream, resampled and mixed down by ``av.AudioResampler`` (fltp, mono,
    ``sample_rate``), zero-padded at the end or cut to ``seconds``. Video: over the first
    ``min(seconds, stream duration)`` seconds, the frames nearest to the centres of ``frames`` equal
    segments (by timestamp; the last frame repeats when the stream ends early), centre square,
    resized to ``size``×``size`` (``cv2.INTER_AREA``). Demuxing stops once both are complete.

    Returns
    -------
    frames : uint8 (frames, 3, size, size) RGB
    audio : float32 (round(seconds * sample_rate),)

    Raises
    ------
    AvClipError
        naming the file: unreadable, no audio stream, no video stream, nothing decodable.
    """
    av, cv2 = _import("av"), _import("cv2")
    path = Path(path)
    n_samples = int(round(seconds * sample_rate))
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as e:
        raise _clip_error(path, f"PyAV cannot open it (corrupt or not an mp4: {e})") from None
    try:
        if not container.streams.audio:
            raise _clip_error(path, "it has no audio stream (the teacher hears the audio; the clip is skipped)")
        if not container.streams.video:
            raise _clip_error(path, "it has no video stream")
        audio_stream, video_stream = container.streams.audio[0], container.streams.video[0]
        video_stream.thread_type = "AUTO"
        picker = _FramePicker(frames, _video_window(container, video_stream, seconds), video_stream)
        audio = _MonoAudio(av, sample_rate)
        try:
            _demux(container, audio_stream, video_stream, picker, audio, n_samples)
            picked = picker.finish()
            if picked is None:
                raise _clip_error(path, "the video stream has no decodable frame")
            images = [_square(cv2, f.to_ndarray(format="rgb24"), size) for f in picked]
        except AvClipError:
            raise
        except (av.FFmpegError, OSError, MemoryError) as e:
            raise _clip_error(path, f"PyAV cannot decode it ({type(e).__name__}: {e})") from None
        except ValueError as e:  # PyAV's own errors while converting frames
            raise _clip_error(path, f"PyAV cannot decode it (ValueError: {e})") from None
    finally:
        container.close()
    if audio.n == 0:
        raise _clip_error(path, "its audio stream has no decodable sample")
    samples = np.concatenate(audio.chunks).astype(np.float32, copy=False)
    # the clip already is the [start, start + 10) window: keep the start
    return np.stack(images).astype(np.uint8), media.fit_length(samples, n_samples, "start").astype(np.float32)


def _video_window(container, video_stream, seconds: float) -> float:
    """The seconds the frames are spread over: ``min(seconds, stream duration)``; ``seconds`` when the duration
    is unknown."""
    duration = None
    if video_stream.duration and video_stream.time_base:
        duration = float(video_stream.duration * video_stream.time_base)
    elif container.duration:
        duration = container.duration / 1_000_000  # AV_TIME_BASE
    return min(duration, seconds) if duration and duration > 0 else seconds


class _FramePicker:
    """Picks, as the video frames are decoded, the frame nearest to the centre of each of ``frames`` equal
    segments of the first ``window`` seconds (by timestamp, counted from the first frame)."""

    def __init__(self, frames: int, window: float, video_stream):
        self.frames, self.video_stream = frames, video_stream
        self.targets = [(k + 0.5) * window / frames for k in range(frames)]  # seconds after the first frame
        self.picked: list = []  # av.VideoFrame, one per target
        self.previous: tuple[float, object] | None = None
        self.t0, self.n_video = None, 0

    @property
    def done(self) -> bool:
        return len(self.picked) == self.frames

    def take(self, frame) -> None:
        """Assign the frame to every target it is the nearest frame to (it or the one before it)."""
        t = frame.time if frame.time is not None else self.n_video / float(self.video_stream.average_rate or 25)
        self.n_video += 1
        self.t0 = t if self.t0 is None else self.t0
        t -= self.t0
        while len(self.picked) < self.frames and t >= self.targets[len(self.picked)]:
            target = self.targets[len(self.picked)]
            use_previous = self.previous is not None and target - self.previous[0] < t - target
            self.picked.append(self.previous[1] if use_previous else frame)
        self.previous = (t, frame)

    def finish(self) -> list | None:
        """The picked frames, the last frame repeated when the stream is shorter than its duration said; None
        when no frame was decoded."""
        if self.previous is None:
            return None
        while len(self.picked) < self.frames:
            self.picked.append(self.previous[1])
        return self.picked


class _MonoAudio:
    """The audio frames resampled by ``av.AudioResampler`` to mono fltp at ``sample_rate``, as (samples,) chunks;
    ``n`` counts the samples."""

    def __init__(self, av, sample_rate: int):
        self.av, self.sample_rate = av, sample_rate
        self.resampler = av.AudioResampler(format="fltp", layout="mono", rate=sample_rate)
        self.chunks: list[np.ndarray] = []
        self.n = 0

    def _keep(self, frames) -> None:
        for o in frames:
            self.chunks.append(o.to_ndarray()[0])  # (samples,), fltp mono is (1, samples)
            self.n += o.samples

    def flush(self) -> None:
        """The samples the resampler still holds."""
        self._keep(self.resampler.resample(None))

    def add(self, frame) -> None:
        try:
            out = self.resampler.resample(frame)
        except ValueError:  # the stream changed rate or layout mid-way: flush, start a new resampler
            self.flush()
            self.resampler = self.av.AudioResampler(format="fltp", layout="mono", rate=self.sample_rate)
            out = self.resampler.resample(frame)
        self._keep(out)


def _demux(container, audio_stream, video_stream, picker: _FramePicker, audio: _MonoAudio, n_samples: int) -> None:
    """Decode the packets of both streams until ``picker`` is done and ``audio`` holds ``n_samples``, or the file
    ends."""
    for packet in container.demux(audio_stream, video_stream):
        video_done = picker.done
        if packet.stream is video_stream and not video_done:
            for frame in packet.decode():
                picker.take(frame)
        elif packet.stream is audio_stream and audio.n < n_samples:
            for frame in packet.decode():
                audio.add(frame)
        if picker.done and audio.n >= n_samples:
            break
    else:  # the file ended (demux's last, empty packets flushed the decoders): flush the resampler
        if audio.n < n_samples:
            audio.flush()


def _clip_error(path: Path, reason: str) -> AvClipError:
    return AvClipError(f"{path}: {reason}")


def read_wav_frames(source: ClipSource, frames: int = 4, size: int = 64, sample_rate: int = 16000,
                    seconds: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """The output of ``decode_mp4`` from the CAV-MAE layout (wav + frame_{i} jpgs).

    The wav is read with soundfile, averaged to mono, resampled with ``librosa.resample`` when its
    rate differs, zero-padded at the end or cut to ``seconds``. ``frames`` jpgs are taken at the
    centres of equal segments of the jpgs present (10 in the full layout), read with ``cv2.imread``
    (BGR → RGB), centre square, resized to ``size``×``size``.

    Raises
    ------
    AvClipError
        naming the file that is absent or unreadable.
    """
    cv2 = _import("cv2")
    for module in ("librosa", "soundfile"):  # media.read_wav's: a missing one is this reader's error
        _import(module)
    if source.audio is None:
        raise AvClipError(f"{source.name}: the CAV-MAE frames exist but audio/{source.name}.wav does not")
    if not source.frames:
        raise AvClipError(f"{source.audio}: the wav exists but no frames/frame_{{0..9}}/{source.name}.jpg does")
    audio = media.read_wav(source.audio, sample_rate, int(round(seconds * sample_rate)), "start", _clip_error)
    images = []
    for i in media.frame_indices(len(source.frames), frames).tolist():
        path = source.frames[i]
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise AvClipError(f"{path}: OpenCV cannot read the jpg")
        images.append(_square(cv2, cv2.cvtColor(image, cv2.COLOR_BGR2RGB), size))
    return np.stack(images).astype(np.uint8), audio


def read_clip(source: ClipSource, frames: int = 4, size: int = 64, sample_rate: int = 16000,
              seconds: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """``decode_mp4`` or ``read_wav_frames``, by the clip's layout."""
    if source.layout == "mp4":
        return decode_mp4(source.video, frames, size, sample_rate, seconds)
    return read_wav_frames(source, frames, size, sample_rate, seconds)


# ---- labels ---------------------------------------------------------------------------------------
def encode_labels(label) -> str:
    """One clip's label (str or int) or labels (tuple/list of them) as the cache stores it: joined with ``"|"``."""
    items = list(label) if isinstance(label, (tuple, list)) else [label]
    out = []
    for item in items:
        if isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            item = str(int(item))
        if not isinstance(item, str) or not item or LABEL_SEPARATOR in item:
            raise AvClipError(f"label {item!r} is not a non-empty string (or integer) without "
                              f"{LABEL_SEPARATOR!r}; the cache joins multiple labels with {LABEL_SEPARATOR!r}.")
        out.append(item)
    return LABEL_SEPARATOR.join(out)


def split_labels(labels: Iterable[str]) -> list[tuple[str, ...]]:
    """The cache's ``labels`` array back as one tuple of labels per clip (``""`` → ``()``)."""
    return [tuple(str(s).split(LABEL_SEPARATOR)) if str(s) else () for s in labels]


# ---- prepare --------------------------------------------------------------------------------------
SPECTROGRAMS = ("logmel", "stft")  # what the spectrogram array ("logmel", whatever it holds) is computed as


def _params(frames: int, size: int, sample_rate: int, n_mels: int, seconds: float, spectrogram: str = "logmel") -> dict:
    if spectrogram not in SPECTROGRAMS:
        raise AvClipError(f"prepare: spectrogram={spectrogram!r} is not one of {', '.join(SPECTROGRAMS)}.")
    clip = media.clip_params(AvClipError, frames, size, sample_rate, n_mels, seconds)
    stft = {} if spectrogram == "logmel" else {"spectrogram": spectrogram, "n_bins": 1 + clip["n_fft"] // 2}
    return {
        **clip, **stft,  # a log-mel cache's params stay as they were: no key, n_mels rows
        "frame_sampling": "mp4: frames nearest the centres of `frames` equal segments of the first `seconds`; "
                          "cavmae: jpgs at the centres of equal segments of frame_0..frame_9",
        "crop": "centre square, cv2.INTER_AREA", "colour": "RGB",
        "audio": "mono (av.AudioResampler / mean of channels), resampled, zero-pad at the end or keep the start",
        "power_to_db": dict(media.POWER_TO_DB),
        "labels": f"str, joined with {LABEL_SEPARATOR!r}",
    }


def _unique_clips(clips: Sequence[tuple[str, object]]) -> tuple[list[tuple[str, str]], int]:
    """(name, encoded labels) in first-seen order, and how many exact duplicate rows were dropped."""
    seen: dict[str, str] = {}
    duplicates = 0
    for entry in clips:
        try:
            name, label = entry
        except (TypeError, ValueError):
            raise AvClipError(f"clip entry {entry!r} is not a (clip name, label or tuple of labels) pair.") from None
        name, encoded = _check_name(name), encode_labels(label)
        if name in seen:
            if seen[name] != encoded:
                raise AvClipError(f"clip {name} is listed twice with different labels ({seen[name]!r} and "
                                  f"{encoded!r}); merge the rows into one multi-label entry.")
            duplicates += 1
            continue
        seen[name] = encoded
    return list(seen.items()), duplicates


def _relative(raw_dir: Path, path: Path) -> str:
    try:
        return path.relative_to(raw_dir).as_posix()
    except ValueError:
        return str(path)


def _fingerprint(raw_dir: Path, wanted: list[tuple[str, str]], found: dict[str, ClipSource]) -> str:
    """Hash of the wanted names and labels, and of the relative paths and sizes of the found files."""
    digest = hashlib.sha256()
    for name, labels in wanted:
        source = found.get(name)
        files = ([f"{_relative(raw_dir, p)}:{p.stat().st_size}" for p in source.files] if source is not None
                 else ["missing"])
        digest.update(f"{name}\t{labels}\t{' '.join(files)}\n".encode())
    return digest.hexdigest()


def _versions() -> dict:
    import av

    ffmpeg = {k: ".".join(map(str, v)) for k, v in av.library_versions.items()}
    return media.library_versions(av=av.__version__, ffmpeg=ffmpeg)


def _main_file(source: ClipSource) -> Path:
    """The file a skipped clip is listed under: its mp4, else its wav, else its first jpg."""
    return source.video if source.layout == "mp4" else (source.audio or source.frames[0])


def _hash_clip(item: tuple[str, str, ClipSource | None]) -> str:
    """The clip's content digest: the bytes of its files (mp4, or wav and jpgs; none for a missing clip)."""
    return cache_store.hash_files(item[2].files if item[2] is not None else [])


def _decode_clip(item: tuple[str, str, ClipSource | None], raw_dir: Path,
                 params: dict) -> tuple[dict | None, dict, str]:
    """One wanted clip's rows for ``cache.build``; None for a missing clip, or with the unreadable file; and its
    content digest, hashed right before decoding (the decoders then read the files from the page cache)."""
    name, encoded, source = item
    digest = _hash_clip(item)
    if source is None:
        return None, {}, digest
    try:
        images, audio = read_clip(source, params["frames"], params["size"], params["sample_rate"], params["seconds"])
        spectrogram = (media.stft_db(audio, params["hop_length"], params["n_fft"]) if "n_bins" in params else
                       logmel(audio, params["sample_rate"], params["n_mels"], params["hop_length"], params["n_fft"]))
    except AvClipError as e:
        file = _main_file(source)
        reason = str(e)
        reason = reason.split(": ", 1)[1] if reason.startswith(f"{file}: ") else reason
        return None, {"skipped": reason, "file": _relative(raw_dir, file)}, digest
    return {"frames": images, "logmel": spectrogram, "names": name, "labels": encoded}, {}, digest


def _own_out_dir(spec: cache_store.CacheSpec, out_dir) -> Path:
    """``out_dir`` checked (``cache.check_out_dir``) and refused when it holds the cache of another data set."""
    out_dir = cache_store.check_out_dir(spec, out_dir)
    other = cache_store.read_manifest(spec, out_dir)
    if other is not None and other.get("format") != spec.format:
        raise AvClipError(f"cache folder {out_dir} already holds another cache ({out_dir / MANIFEST_NAME} has "
                          f"format {other.get('format')!r}); use a separate --out folder per data set.")
    return out_dir


def _columns(params: dict, wanted: list[tuple[str, str]]) -> dict[str, Column]:
    """The cache's arrays: row shape and stored dtype of each; names and labels as wide as the longest wanted."""
    longest = {"names": max(len(clip) for clip, _ in wanted), "labels": max(len(encoded) for _, encoded in wanted)}
    return {"frames": Column((params["frames"], 3, params["size"], params["size"]), "|u1"),
            "logmel": Column((1, params.get("n_bins", params["n_mels"]), params["n_times"]), "<f2"),
            "names": Column((), f"<U{max(1, longest['names'])}"),
            "labels": Column((), f"<U{max(1, longest['labels'])}")}


def _summarize(valid: np.ndarray, notes: list[dict], *, items: list[tuple[str, str, ClipSource | None]],
               spec: cache_store.CacheSpec, raw_dir: Path, out_dir: Path, n_wanted: int, n_found: int,
               missing: list[str], duplicates: int) -> dict:
    """The manifest entries of a clip cache for ``cache.build``: counts, missing clips, skipped files and why,
    versions; ``AvClipError`` when no clip found could be read."""
    # a note without a file is build's: the log-mel was not finite
    skipped = [{"name": clip, "file": note.get("file", _relative(raw_dir, _main_file(source))),
                "reason": note["skipped"]} for (clip, _, source), note in zip(items, notes) if "skipped" in note]
    kept = [(encoded, source) for (_, encoded, source), ok in zip(items, valid) if ok]
    if not kept:
        first = "; ".join(f"{s['file']}: {s['reason']}" for s in skipped[:3])
        raise AvClipError(f"none of the {n_found} {spec.dataset} clips found in {raw_dir} could be read "
                          f"({first}); check that they are mp4 files with an audio stream or the CAV-MAE "
                          "layout.")
    layouts = {layout: sum(source.layout == layout for _, source in kept) for layout in ("mp4", "cavmae")}
    per_label: dict[str, int] = {}
    for entry in split_labels(encoded for encoded, _ in kept):
        for label in entry:
            per_label[label] = per_label.get(label, 0) + 1
    log.info("%s: %d clips, %d missing, %d skipped", out_dir, len(kept), len(missing), len(skipped))
    return {
        "dataset": spec.dataset, "raw_dir": str(raw_dir.resolve()),
        "labels_encoding": f"labels[i] is the clip's labels joined with {LABEL_SEPARATOR!r}; "
                           "split_labels() gives tuples",
        "counts": {
            "wanted": n_wanted, "found": n_found, "missing": len(missing), "skipped": len(skipped),
            "clips": len(kept), "duplicate_rows": duplicates, "layouts": layouts,
            "per_label": dict(sorted(per_label.items())),
        },
        "missing": missing,
        "skipped": skipped,
        "versions": _versions(),
    }


def prepare(raw_dir: str | os.PathLike, out_dir: str | os.PathLike, clips: Sequence[tuple[str, object]],
            frames: int = 4, size: int = 64, n_mels: int = 64, seconds: float = 10.0, name: str = "vggsound",
            progress: Callable[[int], object] | None = None, sample_rate: int = 16000, workers: int | None = None,
            shard_size: int = cache_store.SHARD_SIZE, spectrogram: str = "logmel") -> dict:
    """Build the cache (see the module docstring) in ``out_dir`` from the wanted clips found under ``raw_dir``.

    Per clip (``decode_mp4`` or ``read_wav_frames``): ``frames`` RGB frames, centre square,
    ``size``×``size``; mono audio at ``sample_rate``, ``seconds`` long, as a log-mel spectrogram
    (32 ms window, 10 ms hop: n_fft 512 and hop 160 at 16 kHz) in dB, or with ``spectrogram="stft"`` the STFT
    magnitude in dB (``media.stft_db``: 1 + n_fft // 2 = 257 bins, stored in the same ``logmel`` array and
    recorded as ``params["spectrogram"]``). Missing clips are listed in
    ``manifest["missing"]``; a clip that cannot be read (corrupt, no audio stream) is listed in
    ``manifest["skipped"]`` with the reason. Neither is fatal: their rows have ``valid`` False.

    A cache built from the same clip list (names and labels) and the same files (relative paths, sizes and
    bytes: every file is re-hashed, not decoded) with the same parameters is reused, not rebuilt; the returned
    manifest then has ``reused=True``. ``cache.build`` decodes the clips with ``workers`` processes (default: the
    usable cores), resumes a killed run and keeps the previous cache readable until the new one is done.

    Parameters
    ----------
    raw_dir : the clip folder (mp4 files, or the CAV-MAE ``audio/`` and ``frames/`` folders).
    out_dir : where the cache and the manifest go (created). One data set per folder: a folder
        holding another cache's manifest is refused.
    clips : (clip name, label or tuple of labels) per wanted clip, e.g. from the CSV manifests;
        exact duplicate rows are dropped (counted), conflicting ones are an error.
    name : ``vggsound``, ``audioset`` or another lower-case identifier: the cache's data set.
    progress : optional ``progress(n)``: advances by ``n`` clips, to the number of distinct wanted
        clips in all (everything at once when reused).
    workers, shard_size : see ``cache.build``.

    Returns
    -------
    dict, the manifest, plus ``reused`` (bool).

    Raises
    ------
    AvClipError
        for a bad folder, clip list or parameter, and when no wanted clip could be read.
    """
    spec = cache_spec(name)
    params = _params(frames, size, sample_rate, n_mels, seconds, spectrogram)
    raw_dir = Path(raw_dir)
    wanted, duplicates = _unique_clips(clips)
    if not wanted:
        raise AvClipError(f"prepare {name}: the clip list is empty; pass (clip name, label) pairs from the CSV.")
    out_dir = _own_out_dir(spec, out_dir)
    found = find_clips(raw_dir, [n for n, _ in wanted])
    missing = [n for n, _ in wanted if n not in found]
    if not found:
        raise AvClipError(f"none of the {len(wanted)} wanted {spec.dataset} clips (e.g. {wanted[0][0]}) is in "
                          f"{raw_dir}; {EXPECTED_LAYOUT}.")
    fingerprint = _fingerprint(raw_dir, wanted, found)
    items = [(clip, encoded, found.get(clip)) for clip, encoded in wanted]
    reused = cache_store.reuse(spec, out_dir, params, fingerprint, items, _hash_clip, progress, workers=workers,
                               describe=lambda item: item[0])
    if reused is not None:
        return reused

    for module in ("av", "cv2", "librosa", "soundfile"):
        _import(module)
    summarize = functools.partial(_summarize, items=items, spec=spec, raw_dir=raw_dir, out_dir=out_dir,
                                  n_wanted=len(wanted), n_found=len(found), missing=missing, duplicates=duplicates)
    decode = functools.partial(_decode_clip, raw_dir=raw_dir, params=params)
    return cache_store.build(spec, out_dir, items, decode, _columns(params, wanted), params, fingerprint, summarize,
                             hash_item=_hash_clip, workers=workers, shard_size=shard_size, progress=progress,
                             describe=lambda item: item[0])


# ---- load -----------------------------------------------------------------------------------------
def load_cache(out_dir: str | os.PathLike, name: str = "vggsound") -> dict:
    """The valid rows of the cache (see the module docstring) plus ``manifest``: ``names`` and ``labels`` (str) as
    arrays, ``frames`` (uint8) and ``logmel`` (float16) as ``LazyRows`` (``cache.load``).

    Raises
    ------
    AvClipError
        naming the file and how to rebuild it when the cache is missing, corrupt or out of step
        with its manifest.
    """
    return cache_store.load(cache_spec(name), out_dir)
