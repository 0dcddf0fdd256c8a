"""RAVDESS (Livingstone & Russo 2018, Zenodo 10.5281/zenodo.1188976): names, pairing, splits and the prepare cache.

On disk (data-formats reference, section A1) the speech part is a tree
``RAW/Actor_01 … Actor_24`` holding ``MM-VV-EE-II-SS-RR-AA.ext`` files: ``01-01-*.mp4`` (audio-visual
speech), ``02-01-*.mp4`` (video only) and ``03-01-*.wav`` (audio only). An audio-visual sample is
``01-<key>.mp4`` with ``03-<key>.wav``; the class label is ``emotion - 1`` (8 classes).

``prepare`` turns every pair into ``frames`` face crops (modality α, the teacher's) and a log-mel
spectrogram (modality β) and stores them in a cache of memory-mappable arrays (``cache``, format version 3),
one row per pair::

    OUT/arrays/frames.npy   uint8   (n_pairs, frames, 3, size, size)   RGB face crops
    OUT/arrays/logmel.npy   float16 (n_pairs, 1, n_mels, n_times)      dB, librosa.power_to_db
    OUT/arrays/labels.npy   int64   (n_pairs,)                         emotion - 1, 0..7
    OUT/arrays/actors.npy   int64   (n_pairs,)                         1..24, from the names
    OUT/arrays/keys.npy     str     (n_pairs,)                         "VV-EE-II-SS-RR-AA"
    OUT/arrays/valid.npy    bool    (n_pairs,)                         False: a file could not be read
    OUT/arrays/digest.npy   |S32    (n_pairs,)                         sha256 of the mp4's and the wav's bytes
    OUT/checksums.json      the checksum of every shard of rows of every array (``mke-exp verify``)
    OUT/manifest.json       parameters, counts, skipped files and why, faces not found, versions

``load_cache`` returns the valid rows only: labels, actors and keys in memory, frames and logmel as
``LazyRows`` (read when a batch asks for them).

Clips are ordered by (actor, key), so the cache does not depend on the order the file system lists
folders in. Only ``prepare`` needs PyAV (video), OpenCV (faces), librosa and soundfile (``pip install -e
.[experiments]``).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from mke_experiments.data import cache as cache_store
from mke_experiments.data import media
from mke_experiments.data.cache import Column
from mke_theory.core.errors import MKEError

log = logging.getLogger(__name__)

# Field 3 of the name, 01..08 (README_RAVDESS.txt); the class label is the index.
EMOTIONS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
MODALITIES = {1: "audio-video", 2: "video-only", 3: "audio-only"}
VOCAL_CHANNELS = {1: "speech", 2: "song"}
N_ACTORS = 24

MANIFEST_NAME = "manifest.json"
CACHE_FORMAT = "mke-ravdess-cache"
CACHE_VERSION = 3  # 3: content digests (digest.npy, checksums.json, content_digest)
CACHE_ARRAYS = ("frames", "logmel", "labels", "actors", "keys")
SMALL_ARRAYS = frozenset({"labels", "actors", "keys"})  # read into memory by load_cache; frames, logmel lazy
HAAR_CASCADE = "haarcascade_frontalface_default.xml"

EXPECTED_TREE = "expected Actor_01 … Actor_24 folders holding 01-01-*.mp4 and 03-01-*.wav files"
PREPARE_HINT = "run mke-exp prepare ravdess --raw DIR --out DIR"

_NAME_RE = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)$")
_ACTOR_DIR_RE = re.compile(r"^Actor_(\d\d)$")
_EXTENSION = {1: ".mp4", 2: ".mp4", 3: ".wav"}

# Detection runs on a grey copy whose shorter side is this long: a 720p RAVDESS face becomes ~90 px,
# and a tiny fixture frame is upscaled past the cascade's 24 px window.
_DETECT_SHORT_SIDE = 240
_FACE_MARGIN = 0.15  # widen the Haar box by 15 % per side: it stops at the eyebrows and the chin


class RavdessError(MKEError):
    """A RAVDESS file, folder or cache the user supplied is not what the loader expects."""


CACHE_SPEC = cache_store.CacheSpec(dataset="RAVDESS", format=CACHE_FORMAT, version=CACHE_VERSION,
                                   arrays=lambda manifest: CACHE_ARRAYS, small=SMALL_ARRAYS, error=RavdessError,
                                   hint=PREPARE_HINT, manifest_name=MANIFEST_NAME)


class RavdessName(NamedTuple):
    """The seven fields of ``MM-VV-EE-II-SS-RR-AA.ext`` as integers, plus what follows from them."""

    modality: int  # 1 audio-video, 2 video-only, 3 audio-only
    vocal_channel: int  # 1 speech, 2 song
    emotion: int  # 1..8, see EMOTIONS
    intensity: int  # 1 normal, 2 strong
    statement: int  # 1 "Kids are talking by the door", 2 "Dogs are sitting by the door"
    repetition: int  # 1, 2
    actor: int  # 1..24, odd male, even female
    label: int  # emotion - 1, 0..7
    key: str  # "VV-EE-II-SS-RR-AA": the six fields shared by the mp4 and the wav of one sample


class Pair(NamedTuple):
    """One audio-visual speech sample: ``01-<key>.mp4`` and ``03-<key>.wav``."""

    video: Path
    audio: Path
    name: RavdessName  # parsed from the mp4


@dataclass
class Scan:
    """What ``scan`` found under a RAVDESS folder.

    ``pairs`` are sorted by (actor, key); ``unpaired`` holds audio-visual speech files without their
    partner; ``invalid`` holds (file, reason) for names that break the naming rules; ``ignored``
    counts valid files this task does not use (``video_only`` 02-01-*.mp4, ``song`` *-02-*, and
    ``other`` files that are neither .mp4 nor .wav).
    """

    raw_dir: Path
    pairs: list[Pair] = field(default_factory=list)
    unpaired: list[Path] = field(default_factory=list)
    invalid: list[tuple[Path, str]] = field(default_factory=list)
    ignored: dict[str, int] = field(default_factory=lambda: {"video_only": 0, "song": 0, "other": 0})

    def relative(self, path: Path) -> str:
        """``Actor_XX/name`` for reports: stable when the raw folder moves."""
        try:
            return path.relative_to(self.raw_dir).as_posix()
        except ValueError:
            return str(path)


# ---- names ----------------------------------------------------------------------------------------
def parse_name(filename: str | os.PathLike) -> RavdessName:
    """Parse ``MM-VV-EE-II-SS-RR-AA.ext`` and check it against the RAVDESS rules.

    Parameters
    ----------
    filename : a bare name or a path; when the parent folder is ``Actor_XX`` its number must equal
        the actor field, and when the name has an extension it must fit the modality (.mp4 for 01
        and 02, .wav for 03).

    Raises
    ------
    RavdessError
        naming the file and the broken rule.
    """
    path = Path(filename)
    stem, ext = (path.stem, path.suffix.lower()) if path.suffix else (path.name, "")
    match = _NAME_RE.match(stem)

    def fail(reason: str) -> RavdessError:
        return RavdessError(f"{path}: {reason}; RAVDESS names are MM-VV-EE-II-SS-RR-AA.ext "
                            "(seven two-digit fields, e.g. 01-01-03-01-02-01-12.mp4)")

    if match is None:
        raise fail("not seven two-digit fields separated by '-'")
    modality, channel, emotion, intensity, statement, repetition, actor = (int(g) for g in match.groups())
    if modality not in MODALITIES:
        raise fail(f"modality {modality:02d} is not 01 (audio-video), 02 (video-only) or 03 (audio-only)")
    if channel not in VOCAL_CHANNELS:
        raise fail(f"vocal channel {channel:02d} is not 01 (speech) or 02 (song)")
    if not 1 <= emotion <= len(EMOTIONS):
        raise fail(f"emotion {emotion:02d} is outside 01–08")
    if channel == 2 and emotion > 6:
        raise fail(f"song has emotions 01–06 only, not {emotion:02d}")
    if intensity not in (1, 2):
        raise fail(f"intensity {intensity:02d} is not 01 (normal) or 02 (strong)")
    if emotion == 1 and intensity != 1:
        raise fail("neutral (emotion 01) has intensity 01 only")
    if statement not in (1, 2):
        raise fail(f"statement {statement:02d} is not 01 or 02")
    if repetition not in (1, 2):
        raise fail(f"repetition {repetition:02d} is not 01 or 02")
    if not 1 <= actor <= N_ACTORS:
        raise fail(f"actor {actor:02d} is outside 01–24")
    if channel == 2 and actor == 18:
        raise fail("actor 18 recorded no song")
    if ext and ext != _EXTENSION[modality]:
        raise fail(f"modality {modality:02d} files are {_EXTENSION[modality]}, not {ext}")
    folder = _ACTOR_DIR_RE.match(path.parent.name)
    if folder is not None and int(folder.group(1)) != actor:
        raise fail(f"actor field {actor:02d} differs from the folder {path.parent.name} it sits in")
    key = "-".join(match.groups()[1:])
    return RavdessName(modality, channel, emotion, intensity, statement, repetition, actor, emotion - 1, key)


# ---- scan -----------------------------------------------------------------------------------------
def scan(raw_dir: str | os.PathLike) -> Scan:
    """Pair the audio-visual speech files under ``raw_dir/Actor_XX/``.

    Every ``01-01-<key>.mp4`` is paired with ``03-01-<key>.wav``. Video-only (02-*) and song (*-02-*)
    files are valid but unused: they are counted in ``ignored``. Names breaking the rules go to
    ``invalid`` with the reason; a file without its partner goes to ``unpaired``.

    Raises
    ------
    RavdessError
        when ``raw_dir`` does not exist, is not a folder or holds no ``Actor_XX`` folder.
    """
    raw_dir = Path(raw_dir)
    if not raw_dir.exists():
        raise RavdessError(f"RAVDESS folder {raw_dir} does not exist; {EXPECTED_TREE}.")
    if not raw_dir.is_dir():
        raise RavdessError(f"RAVDESS folder {raw_dir} is a file, not a folder; {EXPECTED_TREE}.")
    actor_dirs = sorted(p for p in raw_dir.iterdir() if p.is_dir() and _ACTOR_DIR_RE.match(p.name))
    if not actor_dirs:
        what = "is empty" if not any(raw_dir.iterdir()) else "has no Actor_XX folders"
        raise RavdessError(f"RAVDESS folder {raw_dir} {what}; {EXPECTED_TREE} (unzip Video_Speech_Actor_XX.zip "
                           "and Audio_Speech_Actors_01-24.zip into it).")

    result = Scan(raw_dir=raw_dir)
    videos: dict[str, tuple[Path, RavdessName]] = {}
    audios: dict[str, Path] = {}
    for folder in actor_dirs:
        for path in sorted(folder.iterdir()):
            if not path.is_file() or path.name.startswith("."):
                continue
            if path.suffix.lower() not in (".mp4", ".wav"):
                result.ignored["other"] += 1
                continue
            try:
                name = parse_name(path)
            except RavdessError as e:
                result.invalid.append((path, str(e)))
                continue
            if name.vocal_channel == 2:
                result.ignored["song"] += 1
            elif name.modality == 2:
                result.ignored["video_only"] += 1
            elif name.modality == 1:
                videos[name.key] = (path, name)
            else:
                audios[name.key] = path
    for key, (video, name) in videos.items():
        if key in audios:
            result.pairs.append(Pair(video, audios.pop(key), name))
        else:
            result.unpaired.append(video)
    result.unpaired.extend(audios.values())
    result.pairs.sort(key=lambda p: (p.name.actor, p.name.key))
    result.unpaired.sort()
    return result


# ---- prepare --------------------------------------------------------------------------------------
class _ClipError(Exception):
    """One file of a pair cannot be used; the pair is skipped and reported."""

    def __init__(self, path: Path, reason: str):
        super().__init__(reason)
        self.path, self.reason = path, reason


def _params(frames: int, size: int, sample_rate: int, n_mels: int, seconds: float) -> dict:
    return {
        **media.clip_params(RavdessError, frames, size, sample_rate, n_mels, seconds),
        "frame_sampling": "centres of `frames` equal segments of the clip",
        "face_detector": f"cv2 {HAAR_CASCADE}, largest box, {int(_FACE_MARGIN * 100)} % margin; else centre square",
        "colour": "RGB", "audio": "mono mean, librosa.resample, zero-pad at the end or centre-crop",
        "power_to_db": dict(media.POWER_TO_DB),
    }


def _fingerprint(found: Scan) -> str:
    """Hash of the relative paths and sizes of every file the scan looked at: the quick key (new, removed or
    resized files rebuild without reading a byte); the content digests (``_hash_pair``) see the rest."""
    paths = [p for pair in found.pairs for p in (pair.video, pair.audio)]
    paths += found.unpaired + [p for p, _ in found.invalid]
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(f"{found.relative(path)}\t{path.stat().st_size}\n".encode())
    return digest.hexdigest()


def _import_prepare_deps():
    """OpenCV, once it, PyAV, librosa and soundfile (which ``media`` imports) are known to be installed."""
    try:
        import av  # noqa: F401
        import cv2
        import librosa  # noqa: F401
        import soundfile  # noqa: F401
    except ImportError as e:
        raise RavdessError(f"prepare needs opencv-python-headless<5, av (PyAV), librosa and soundfile ({e}); "
                           "install them with pip install -e .[experiments].") from None
    if not hasattr(cv2, "CascadeClassifier"):
        raise RavdessError(f"OpenCV {cv2.__version__} has no CascadeClassifier (removed in 5.0); "
                           'install pip install "opencv-python-headless>=4.8,<5".')
    return cv2


@functools.lru_cache(maxsize=1)
def _face_detector():
    """OpenCV and its Haar face detector, made once per process (each prepare worker builds its own)."""
    cv2 = _import_prepare_deps()
    path = os.path.join(cv2.data.haarcascades, HAAR_CASCADE)
    detector = cv2.CascadeClassifier(path)
    if detector.empty():
        raise RavdessError(f"the Haar cascade {path} shipped with OpenCV cannot be read; reinstall "
                           'it with pip install --force-reinstall "opencv-python-headless>=4.8,<5".')
    return cv2, detector


def _frame_count(reported: int, available: int) -> int:
    """The frames the picks are spread over: the container's count when it is plausible (at least 1 and at most the
    video packets there are: a short count is trusted), else the packets (a missing or too long count)."""
    return reported if 0 < reported <= available else available


def _read_frames(path: Path, k: int) -> list[np.ndarray]:
    """``k`` BGR frames (H, W, 3) at the centres of ``k`` equal segments of the clip (``media.frame_indices``), frame
    i being the i-th in presentation order.

    PyAV decodes each wanted frame from the keyframe at or before it (an original RAVDESS mp4 has one every 29
    frames; the run goes on from the last frame when that is nearer), not every frame from the start: about half
    the frames for 4 of 93. The pixels are those OpenCV's sequential decode gave (the same FFmpeg decoders and
    BGR conversion; checked on the real clips in tests/experiments/test_realdata_ravdess.py).
    """
    av = media.require("av", RavdessError, "reading RAVDESS video")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as e:
        raise _ClipError(path, f"PyAV cannot open the video (corrupt or not an mp4: {e})") from None
    try:
        if not container.streams.video:
            raise _ClipError(path, "the file has no video stream")
        return _pick_frames(container, container.streams.video[0], k, path)
    except (av.FFmpegError, OSError, MemoryError, ValueError) as e:
        raise _ClipError(path, f"PyAV cannot decode the video ({type(e).__name__}: {e})") from None
    finally:
        container.close()


def _pick_frames(container, stream, k: int, path: Path) -> list[np.ndarray]:
    """The frames of ``_read_frames``: the packets' timestamps (read without decoding) name the wanted frames and
    the keyframes before them; decoding seeks to those keyframes."""
    packets = [(packet.pts, packet.is_keyframe) for packet in container.demux(stream)
               if packet.pts is not None and packet.size]  # the flush packet at the end has neither
    if not packets:
        raise _ClipError(path, "the video has no decodable frame")
    stamps = np.sort(np.asarray([pts for pts, _ in packets], dtype=np.int64))  # (n,) presentation order
    keys = np.sort(np.asarray([pts for pts, key in packets if key], dtype=np.int64))
    order = stamps[media.frame_indices(_frame_count(stream.frames, len(stamps)), k)]  # (k,) wanted timestamps
    picked: dict[int, np.ndarray] = {}
    decoded, last = None, None  # the frames since the last seek, and the timestamp of the last one
    for target in sorted(set(order.tolist())):
        before = keys[keys <= target]
        start = int(before[-1]) if len(before) else int(stamps[0])
        if decoded is None or last is None or not start <= last < target:  # nearer from the keyframe than from here
            container.seek(start, stream=stream, backward=True, any_frame=False)  # also flushes the decoder
            decoded, last = container.decode(stream), None
        for frame in decoded:
            if frame.pts is None:
                raise _ClipError(path, "the video's frames carry no timestamps")
            last = frame.pts
            if last >= target:
                break
        else:
            decoded = None  # the stream ended before the target: seek for the next one
        if last == target:
            picked[target] = frame.to_ndarray(format="bgr24")
    missing = len(set(order.tolist())) - len(picked)
    if missing:
        raise _ClipError(path, f"{missing} of the {k} wanted frames cannot be decoded")
    return [picked[int(t)] for t in order]


def _crop_face(cv2, detector, image: np.ndarray, size: int) -> tuple[np.ndarray, bool]:
    """Largest Haar face (with margin) or the centre square, resized to (3, size, size) RGB uint8."""
    height, width = image.shape[:2]
    scale = _DETECT_SHORT_SIDE / min(height, width)
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    grey = cv2.resize(grey, (max(1, round(width * scale)), max(1, round(height * scale))),
                      interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    boxes = detector.detectMultiScale(cv2.equalizeHist(grey), scaleFactor=1.1, minNeighbors=5,
                                      minSize=(_DETECT_SHORT_SIDE // 5,) * 2)  # faces fill RAVDESS frames
    found = len(boxes) > 0
    if found:
        x, y, w, h = (float(v) / scale for v in max(boxes, key=lambda b: b[2] * b[3]))
        side = min(max(w, h) * (1 + 2 * _FACE_MARGIN), height, width)
        cx, cy = x + w / 2, y + h / 2
    else:
        side, cx, cy = min(height, width), width / 2, height / 2
    x0 = int(round(min(max(cx - side / 2, 0), width - side)))  # shift the square inside the frame
    y0 = int(round(min(max(cy - side / 2, 0), height - side)))
    side_px = max(1, int(round(side)))
    crop = image[y0:y0 + side_px, x0:x0 + side_px]
    crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if side_px > size else cv2.INTER_LINEAR)
    rgb = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(rgb.transpose(2, 0, 1)), found  # (3, size, size)


def _hash_pair(pair: Pair) -> str:
    """The pair's content digest: the bytes of its mp4, then of its wav (``cache.hash_files``)."""
    return cache_store.hash_files([pair.video, pair.audio])


def _decode_pair(pair: Pair, raw_dir: Path, params: dict) -> tuple[dict | None, dict, str]:
    """One pair's rows for ``cache.build``: face crops and log-mel, or None and the unreadable file; and its
    content digest, hashed right before decoding (the decoders then read the files from the page cache)."""
    cv2, detector = _face_detector()
    relative = Scan(raw_dir).relative
    digest = _hash_pair(pair)
    try:
        audio = media.read_wav(pair.audio, params["sample_rate"], params["n_samples"], "centre", _ClipError)
        logmel = media.logmel(audio, params["sample_rate"], params["n_mels"], params["hop_length"], params["n_fft"])
        crops, faces = zip(*(_crop_face(cv2, detector, image, params["size"])
                             for image in _read_frames(pair.video, params["frames"])))
    except _ClipError as e:
        return None, {"skipped": e.reason, "file": relative(e.path)}, digest
    except cv2.error as e:  # a frame OpenCV decodes but cannot convert
        return None, {"skipped": f"OpenCV error: {str(e).strip().splitlines()[-1]}",
                      "file": relative(pair.video)}, digest
    rows = {"frames": np.stack(crops), "logmel": logmel, "labels": pair.name.label, "actors": pair.name.actor,
            "keys": pair.name.key}
    missed = len(faces) - sum(faces)
    return rows, ({"frames_without_face": int(missed)} if missed else {}), digest


def _columns(params: dict) -> dict[str, Column]:
    """The cache's arrays: row shape and stored dtype of each."""
    return {"frames": Column((params["frames"], 3, params["size"], params["size"]), "|u1"),
            "logmel": Column((1, params["n_mels"], params["n_times"]), "<f2"),
            "labels": Column((), "<i8"), "actors": Column((), "<i8"), "keys": Column((), "<U17")}


def _summarize(valid: np.ndarray, notes: list[dict], *, found: Scan, raw_dir: Path, out_dir: Path,
               frames: int) -> dict:
    """The manifest entries of the RAVDESS cache for ``cache.build``: counts, faces found, skipped files and the
    scan's report; ``RavdessError`` when no pair could be read."""
    pairs = found.pairs
    # a note without a file is build's: the log-mel (of the wav) was not finite
    skipped = [{"file": note.get("file", found.relative(pair.audio)), "key": pair.name.key,
                "reason": note["skipped"]} for pair, note in zip(pairs, notes) if "skipped" in note]
    if not valid.any():
        first = "; ".join(f"{s['file']}: {s['reason']}" for s in skipped[:3])
        raise RavdessError(f"none of the {len(pairs)} pairs in {raw_dir} could be read ({first}); "
                           "check that the files are the original RAVDESS mp4 and wav files.")
    kept = [pair.name for pair, ok in zip(pairs, valid) if ok]
    fallback = [{"key": pair.name.key, "frames_without_face": note["frames_without_face"]}
                for pair, note, ok in zip(pairs, notes, valid) if ok and "frames_without_face" in note]
    n_frames_total = len(kept) * frames
    not_found = sum(c["frames_without_face"] for c in fallback)
    log.info("%s: %d clips, %d skipped, %d/%d frames without a face", out_dir, len(kept), len(skipped),
             not_found, n_frames_total)
    return {
        "raw_dir": str(raw_dir.resolve()),
        "counts": {
            "clips": len(kept), "pairs": len(pairs), "skipped": len(skipped),
            "unpaired": len(found.unpaired), "invalid": len(found.invalid),
            "ignored_video_only": found.ignored["video_only"], "ignored_song": found.ignored["song"],
            "ignored_other": found.ignored["other"],
            "per_label": {EMOTIONS[i]: sum(name.label == i for name in kept) for i in range(len(EMOTIONS))},
            "per_actor": {f"{a:02d}": sum(name.actor == a for name in kept)
                          for a in sorted({name.actor for name in kept})},
        },
        "faces": {"frames": n_frames_total, "found": n_frames_total - not_found, "not_found": not_found,
                  "clips_with_centre_crop": fallback},
        "skipped": skipped,
        "report": {"unpaired": [found.relative(p) for p in found.unpaired],
                   "invalid": [{"file": found.relative(p), "reason": r} for p, r in found.invalid]},
        "versions": _versions(),
    }


def _versions() -> dict:
    """The libraries that decoded and computed the cache: PyAV and its FFmpeg first (they decode the video)."""
    import av

    ffmpeg = {name: ".".join(map(str, version)) for name, version in av.library_versions.items()}
    return media.library_versions(av=av.__version__, ffmpeg=ffmpeg)


def prepare(raw_dir: str | os.PathLike, out_dir: str | os.PathLike, frames: int = 4, size: int = 48,
            sample_rate: int = 16000, n_mels: int = 40, seconds: float = 3.7,
            progress: Callable[[int], object] | None = None, workers: int | None = None,
            shard_size: int = cache_store.SHARD_SIZE) -> dict:
    """Build the cache (see the module docstring) in ``out_dir`` from the audio-visual speech pairs.

    Per pair: ``frames`` frames at the centres of equal segments of the mp4, the largest Haar face of
    each (centre square when none is found; counted), resized to ``size``×``size`` RGB; the wav mixed
    to mono, resampled to ``sample_rate``, zero-padded at the end or centre-cropped to ``seconds``,
    then a log-mel spectrogram (32 ms window, 10 ms hop: n_fft 512 and hop 160 at 16 kHz) in dB.
    A file that cannot be read skips its pair (``valid`` False) and is listed in ``manifest["skipped"]``.

    A cache built from the same files (same names, sizes and bytes: every file is re-hashed, not decoded) with the
    same parameters is reused, not rebuilt; the returned manifest then has ``reused=True``. ``cache.build``
    decodes the pairs with ``workers`` processes (default: the usable cores), resumes a killed run and keeps the
    previous cache readable until the new one is done.

    Parameters
    ----------
    raw_dir : the RAVDESS tree (``Actor_XX/`` folders).
    out_dir : where the cache and the manifest go (created).
    progress : optional ``progress(n)``, called with the number of pairs finished, readable or not (with the
        number of pairs once when the cache is reused).
    workers, shard_size : see ``cache.build``.

    Returns
    -------
    dict, the manifest, plus ``reused`` (bool).
    """
    params = _params(frames, size, sample_rate, n_mels, seconds)
    raw_dir = Path(raw_dir)
    found = scan(raw_dir)
    if not found.pairs:
        raise RavdessError(f"RAVDESS folder {raw_dir} has no audio-visual speech pair (01-01-<key>.mp4 with "
                           f"03-01-<key>.wav; {len(found.unpaired)} unpaired, {len(found.invalid)} badly named); "
                           f"{EXPECTED_TREE}.")
    out_dir = cache_store.check_out_dir(CACHE_SPEC, out_dir)
    fingerprint = _fingerprint(found)
    describe = lambda pair: f"{found.relative(pair.video)} + {pair.audio.name}"  # noqa: E731  in log lines
    reused = cache_store.reuse(CACHE_SPEC, out_dir, params, fingerprint, found.pairs, _hash_pair, progress,
                               workers=workers, describe=describe)
    if reused is not None:
        return reused

    _face_detector()  # the dependencies and the cascade, checked here before any worker starts
    summarize = functools.partial(_summarize, found=found, raw_dir=raw_dir, out_dir=out_dir, frames=params["frames"])
    decode = functools.partial(_decode_pair, raw_dir=raw_dir, params=params)
    return cache_store.build(CACHE_SPEC, out_dir, found.pairs, decode, _columns(params), params, fingerprint,
                             summarize, hash_item=_hash_pair, workers=workers, shard_size=shard_size,
                             progress=progress, describe=describe)


# ---- load -----------------------------------------------------------------------------------------
def load_cache(out_dir: str | os.PathLike) -> dict:
    """The valid rows of the cache (see the module docstring) plus ``manifest``: ``labels``, ``actors`` (int64)
    and ``keys`` (str) as arrays, ``frames`` (uint8) and ``logmel`` (float16) as ``LazyRows`` (``cache.load``).

    Raises
    ------
    RavdessError
        naming the file and how to rebuild it when the cache is missing, corrupt or out of step
        with its manifest.
    """
    return cache_store.load(CACHE_SPEC, out_dir)


# ---- splits ---------------------------------------------------------------------------------------
def actor_split(actors: Sequence[int] | np.ndarray, test: Iterable[int] = (1, 2, 3, 4),
                val: Iterable[int] = (5, 6, 7, 8)) -> dict[str, np.ndarray]:
    """Speaker-independent split on the actor numbers parsed from the names.

    Default: test actors 1–4, validation 5–8, train 9–24 (the split intended in Chumachenko et al.
    2022, ``create_annotations.py``, whose code compared folder-listing indices instead).

    Parameters
    ----------
    actors : (n_clips,) actor numbers, e.g. ``load_cache(...)["actors"]``.

    Returns
    -------
    dict ``{"train", "val", "test"}`` → (n_clips,) boolean masks, disjoint and covering every clip.
    """
    actors = np.asarray(actors, dtype=np.int64)  # (n,)
    test, val = {int(a) for a in test}, {int(a) for a in val}
    if test & val:
        raise MKEError(f"actor_split: actors {sorted(test & val)} are in both test and val; the splits must be "
                         "disjoint.")
    test_mask = np.isin(actors, sorted(test))
    val_mask = np.isin(actors, sorted(val))
    return {"train": ~(test_mask | val_mask), "val": val_mask, "test": test_mask}


def random_split(n: int, seed: int, fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)) -> dict[str, np.ndarray]:
    """Per-clip random split (MST-Distill's protocol: a seeded permutation, first 60 % train, next 20 % val,
    rest test). It leaks speakers across splits; prefer ``actor_split`` for new results.

    Returns
    -------
    dict ``{"train", "val", "test"}`` → (n,) boolean masks.
    """
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6:
        raise MKEError(f"random_split: fractions {fractions} must be three non-negative numbers (train, val, "
                         "test) summing to 1.")
    order = np.random.default_rng(seed).permutation(n)  # (n,)
    n_train, n_val = int(fractions[0] * n), int(fractions[1] * n)
    masks = {name: np.zeros(n, dtype=bool) for name in ("train", "val", "test")}
    masks["train"][order[:n_train]] = True
    masks["val"][order[n_train:n_train + n_val]] = True
    masks["test"][order[n_train + n_val:]] = True
    return masks
