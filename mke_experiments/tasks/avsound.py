"""Tasks ``vggsound`` and ``audioset-vggsound``: audio teacher → audio + video student, event classes.

The paper's protocol for these data was not recovered; the library defines two and says so:

* ``vggsound``: the VGGSound train clips are cut (``data.split_seed``) into a validation part
  (``data.val_fraction``), a labeled audio-only part D_l (``data.labeled_fraction``) and the
  unlabeled audio + video rest D_u; the VGGSound test split evaluates (top-1, top-5, mAP).
  Classes: all 309 (``data.classes=all``) or the VGGSound labels mapped to AudioSet (``mapped``).
* ``audioset-vggsound``: the teacher learns from AudioSet audio (multi-label, restricted to the
  mapped classes; clips without one are dropped) — the AudioSet cache is ``data.audioset`` — and
  pseudo-labels the VGGSound train clips (audio + video, D_u); evaluation on VGGSound test over the
  mapped classes.

``mke-exp prepare vggsound --raw DIR --out CACHE`` reads ``DIR/vggsound.csv`` and the downloaded
clips (``DIR/<ytid>_<start:06d>.mp4``, or the CAV-MAE wav + frames layout); ``mke-exp prepare
audioset --raw DIR --out CACHE`` reads ``DIR/*_segments.csv`` and clips named the same way.
Missing clips are counted and listed, never fatal.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mke_experiments.config import ExperimentConfig, MKEConfig, ModelConfig, TrainConfig, limit
from mke_experiments.metrics import scores_metrics
from mke_experiments.tasks.registry import Task, data_dir_or_error, register_task
from mke_theory.core.errors import MKEError
from mke_theory.core.split import MultimodalSplit

SPLITS_FILE = "splits.json"  # clip name -> "train" | "test", written beside the VGGSound cache


@dataclass(frozen=True)
class SoundData:
    classes: str = limit("all", choices=("all", "mapped"))  # all: the 309 VGGSound classes; mapped: with AudioSet
    labeled_fraction: float = limit(0.2, 0, 1, low_open=True, high_open=True)  # vggsound: share of train → D_l
    val_fraction: float = limit(0.1, 0, 1, high_open=True)  # share of the train clips held out for validation
    split_seed: int = limit(0, 0)
    audioset: str = ""  # audioset-vggsound: folder of the prepared AudioSet cache
    freq_mask: int = limit(8, 0)  # T: SpecAugment frequency band width (mel bins)
    time_mask: int = limit(40, 0)  # T: SpecAugment time span (frames of 10 ms)


@dataclass(frozen=True)
class SoundPrepare:
    frames: int = limit(4, 1)  # frames per clip
    size: int = limit(64, 8)  # frame side in pixels
    n_mels: int = limit(64, 1)  # mel bands
    seconds: float = limit(10.0, 0, low_open=True)  # clip length
    spectrogram: str = limit("logmel", choices=("logmel", "stft"), record="if_set")  # logmel: n_mels mel bands;
    # stft: STFT magnitudes in dB, 257 bins (n_fft 512), as the MFH protocol's audio network reads (n_mels unused)

    @classmethod
    def from_manifest(cls, params: dict) -> SoundPrepare:
        return cls(frames=params["frames"], size=params["size"], n_mels=params["n_mels"], seconds=params["seconds"],
                   spectrogram=params.get("spectrogram", "logmel"))

    @property
    def bins(self) -> int:
        """Rows of the spectrogram: mel bands, or the STFT's 1 + n_fft // 2 (n_fft 512 at any rate: 32 ms)."""
        return self.n_mels if self.spectrogram == "logmel" else 257


def class_list(classes: str) -> list[str]:
    from mke_experiments.data import av_manifests

    return sorted(av_manifests.subset("vggsound" if classes == "all" else "vggsound-mapped"))


def _load_vggsound(data: SoundData, data_dir, classes: list[str]):
    from mke_experiments.data import avclips

    folder = data_dir_or_error(data_dir, "vggsound")
    cache = avclips.load_cache(folder, "vggsound")
    splits_path = Path(folder) / SPLITS_FILE
    try:
        splits = json.loads(splits_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise MKEError(f"{splits_path} is missing or corrupt; run mke-exp prepare vggsound --raw DIR "
                         f"--out {folder}") from None
    if not isinstance(splits, dict) or not all(v in ("train", "test") for v in splits.values()):
        raise MKEError(f"{splits_path} must be a JSON object of clip name -> \"train\" or \"test\"; run "
                       f"mke-exp prepare vggsound --raw DIR --out {folder} again")
    index = {c: i for i, c in enumerate(classes)}
    keep = np.array([lab in index for lab in cache["labels"]], dtype=bool)
    if not keep.all():
        dropped = sorted({str(lab) for lab in np.asarray(cache["labels"])[~keep]})
        warnings.warn(f"{folder}: {int((~keep).sum())} clip(s) of {len(dropped)} label(s) outside the "
                      f"{len(classes)} classes of data.classes={data.classes} are left out (e.g. {dropped[0]!r})",
                      stacklevel=2)
    labels = np.array([index.get(lab, -1) for lab in cache["labels"]])
    part = np.array([splits.get(str(n), "missing") for n in cache["names"]])
    return cache, keep, labels, part


def _prepared(cache) -> SoundPrepare:
    return SoundPrepare.from_manifest(cache["manifest"]["params"])


def _logmel(cache):
    return cache["logmel"].scaled(-40.0, 40.0)  # dB around −40 → roughly unit scale; the same map for every cache


def _frames(cache):
    return cache["frames"].scaled(0.0, 255.0)  # uint8 → [0, 1], per batch


def load_vggsound(data: SoundData, data_dir) -> MultimodalSplit:
    classes = class_list(data.classes)
    cache, keep, labels, part = _load_vggsound(data, data_dir, classes)
    audio, frames = _logmel(cache), _frames(cache)
    train = np.flatnonzero(keep & (part == "train"))
    test = keep & (part == "test")
    order = np.random.default_rng(data.split_seed).permutation(train)
    n_val = int(round(data.val_fraction * len(order)))
    n_lab = max(1, int(round(data.labeled_fraction * (len(order) - n_val))))
    val, labeled, unlabeled = order[:n_val], order[n_val:n_val + n_lab], order[n_val + n_lab:]
    if len(unlabeled) == 0 or not test.any():
        raise MKEError("the VGGSound cache has too few train or test clips of these classes for D_l, D_u "
                         "and a test set")
    val_part = dict(val_alpha=audio[val], val_beta=frames[val], val_labels=labels[val]) if len(val) else {}
    return MultimodalSplit(
        labeled_alpha=audio[labeled], labels=labels[labeled],
        unlabeled_alpha=audio[unlabeled], unlabeled_beta=frames[unlabeled], unlabeled_labels=labels[unlabeled],
        test_alpha=audio[test], test_beta=frames[test], test_labels=labels[test], n_classes=len(classes),
        name=f"vggsound-{data.classes}", **val_part, meta=dict(prepared=_prepared(cache)))


def load_audioset_vggsound(data: SoundData, data_dir) -> MultimodalSplit:
    from mke_experiments.data import av_manifests, avclips

    if not data.audioset:
        raise MKEError("audioset-vggsound needs the AudioSet cache: --set data.audioset=DIR "
                         "(made by: mke-exp prepare audioset --raw DIR --out DIR)")
    classes = class_list("mapped")
    index = {c: i for i, c in enumerate(classes)}
    mid_to_class = {mid: index[c] for c in classes for mid in av_manifests.vggsound_to_audioset(c)}
    teacher_cache = avclips.load_cache(data_dir_or_error(Path(data.audioset), "audioset-vggsound"), "audioset")
    multi_hot = np.zeros((len(teacher_cache["labels"]), len(classes)), np.float32)
    for row, entry in enumerate(teacher_cache["labels"]):
        for mid in str(entry).split("|"):
            if mid in mid_to_class:
                multi_hot[row, mid_to_class[mid]] = 1.0
    has_class = multi_hot.sum(axis=1) > 0
    if not has_class.any():
        raise MKEError(f"no AudioSet clip in {data.audioset} carries a class mapped to VGGSound")
    cache, keep, labels, part = _load_vggsound(data, data_dir, classes)
    prepared = _prepared(cache)
    if _prepared(teacher_cache) != prepared:
        raise MKEError(f"the AudioSet cache {data.audioset} was prepared with {_prepared(teacher_cache)}, the "
                       f"VGGSound cache {data_dir} with {prepared}: prepare both with the same --set prepare.* values")
    audio, frames = _logmel(cache), _frames(cache)
    train = np.random.default_rng(data.split_seed).permutation(np.flatnonzero(keep & (part == "train")))
    n_val = int(round(data.val_fraction * len(train)))
    val, unlabeled = train[:n_val], train[n_val:]
    test = keep & (part == "test")
    val_part = dict(val_alpha=audio[val], val_beta=frames[val], val_labels=labels[val]) if len(val) else {}
    return MultimodalSplit(
        labeled_alpha=_logmel(teacher_cache)[has_class], labels=multi_hot[has_class],
        unlabeled_alpha=audio[unlabeled], unlabeled_beta=frames[unlabeled], unlabeled_labels=labels[unlabeled],
        test_alpha=audio[test], test_beta=frames[test], test_labels=labels[test], n_classes=len(classes),
        name="audioset-vggsound", **val_part, meta=dict(prepared=prepared))


def prepare_vggsound(raw_dir, out_dir, settings: SoundPrepare, progress=None, workers=None) -> dict:
    from mke_experiments.data import av_manifests, avclips

    raw = Path(raw_dir)
    rows = av_manifests.read_vggsound_csv(raw / "vggsound.csv")
    clips = [(av_manifests.clip_name(r.ytid, r.start), r.label) for r in rows]
    manifest = avclips.prepare(raw, out_dir, clips, frames=settings.frames, size=settings.size, n_mels=settings.n_mels,
                               seconds=settings.seconds, name="vggsound", progress=progress,
                               workers=workers, spectrogram=settings.spectrogram)
    splits = {av_manifests.clip_name(r.ytid, r.start): r.split for r in rows}
    from mke_theory.core.records import atomic_write

    atomic_write(Path(out_dir) / SPLITS_FILE, lambda f: f.write(json.dumps(splits).encode()))
    return manifest


def prepare_audioset(raw_dir, out_dir, settings: SoundPrepare, progress=None, workers=None) -> dict:
    from mke_experiments.data import av_manifests, avclips

    raw = Path(raw_dir)
    csvs = sorted(raw.glob("*_segments.csv"))
    if not csvs:
        raise MKEError(f"{raw} holds no AudioSet *_segments.csv (e.g. balanced_train_segments.csv)")
    clips = [(av_manifests.clip_name(r.ytid, int(r.start)), tuple(r.mids))
             for path in csvs for r in av_manifests.read_audioset_segments(path)]
    return avclips.prepare(raw, out_dir, clips, frames=settings.frames, size=settings.size, n_mels=settings.n_mels,
                           seconds=settings.seconds, name="audioset", progress=progress,
                           workers=workers, spectrogram=settings.spectrogram)


def av_perturbation(cfg: ExperimentConfig):
    """T: SpecAugment-style masking of log-mel maps (one band of ``data.freq_mask`` mel bins and one span
    of ``data.time_mask`` frames per clip) and frame jitter (brightness ±20 % per clip); modality dropout
    lives in the student (``perturbations.audio_visual``)."""
    from mke_experiments.perturbations import audio_visual

    return audio_visual(cfg.data.freq_mask, cfg.data.time_mask)


def build_teacher(split, cfg: ModelConfig):
    from mke_experiments.models import av

    return av.build_teacher(split, cfg)


def build_student(split, cfg: ModelConfig, regularised: bool):
    from mke_experiments.models import av

    return av.build_student(split, cfg, regularised)


SMOKE = SoundPrepare(frames=2, size=32, n_mels=16, seconds=1.0)
SMOKE_OVERRIDES = ("data.time_mask=10", "train.batch_size=4")


def smoke_vggsound(folder) -> tuple:
    """Clips of three classes as mp4 files with vggsound.csv, 2 frames of 32×32 and 1 s of audio."""
    from mke_experiments.testing.sound_tasks import vggsound_download

    folder = Path(folder)
    prepare_vggsound(vggsound_download(folder / "vgg"), folder / "vgg_cache", SMOKE, workers=1)
    return folder / "vgg_cache", SMOKE_OVERRIDES


def smoke_audioset_vggsound(folder) -> tuple:
    """The VGGSound smoke data plus an AudioSet tree of the same three classes for the teacher."""
    from mke_experiments.testing.sound_tasks import audioset_download

    folder = Path(folder)
    prepare_audioset(audioset_download(folder / "as"), folder / "as_cache", SMOKE, workers=1)
    data, overrides = smoke_vggsound(folder)
    return data, overrides + (f"data.audioset={folder / 'as_cache'}",)


def _config(name: str) -> ExperimentConfig:
    return ExperimentConfig(
        task=name, data=SoundData(classes="all" if name == "vggsound" else "mapped"), prepare=SoundPrepare(),
        model=ModelConfig(backbone="resnet18", dropout=0.2, fusion="late", modality_dropout=0.1),
        train=TrainConfig(epochs=20, batch_size=32, lr=1e-3),
        mke=MKEConfig(loss_form="consistency", gamma=1.0, input_noise=0.0))


COMMON = dict(evaluate=scores_metrics, primary="top1", scores=True, build_teacher=build_teacher,
              build_student=build_student, perturb=av_perturbation,
              ignores=("model.hidden", "model.width", "model.seg_head",  # ResNet-18 encoders of 512 features
                       "mke.input_noise"))  # T is SpecAugment + frame jitter (data.freq_mask, data.time_mask)
def _shapes(classes: str):
    """(audio, frames, classes, ()) of a config: log-mels of 100 frames per second plus one, RGB frames; the
    class list is read when asked for, not at registration."""
    return lambda c: ((1, c.prepare.bins, int(c.prepare.seconds * 100) + 1),
                      (c.prepare.frames, 3, c.prepare.size, c.prepare.size), len(class_list(classes)), ())


register_task(Task(name="vggsound", description="VGGSound events: audio teacher on a labeled part, audio + video "
                   "students on the rest (top-1/top-5)", default_config=_config("vggsound"), load=load_vggsound,
                   prepare=prepare_vggsound, smoke=smoke_vggsound, shapes=_shapes("all"), **COMMON))
register_task(Task(name="audioset-vggsound", description="teacher on AudioSet audio (multi-label), students on "
                   "VGGSound audio + video, mapped classes", default_config=_config("audioset-vggsound"),
                   load=load_audioset_vggsound, prepare=prepare_vggsound, extra_prepare={"audioset": prepare_audioset},
                   smoke=smoke_audioset_vggsound,
                   shapes=_shapes("mapped"), **COMMON))
