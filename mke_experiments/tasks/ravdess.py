"""Task ``ravdess``: emotion recognition, teacher on face frames (α), students on frames + audio (β).

``mke-exp prepare ravdess --raw DIR --out CACHE`` reads the real tree (``Actor_XX/01-01-*.mp4``
with ``03-01-*.wav``), crops faces, samples frames and computes log-mel spectrograms
(``mke_experiments.data.ravdess``). Default split by actor: test 1–4, validation 5–8, and the
train actors 9–24 divided into D_l and D_u by actor (``labeled_actors``). ``split=random`` gives
MST-Distill's per-clip 60/20/20 split, which lets actors leak between train and test.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mke_experiments.config import ExperimentConfig, MKEConfig, ModelConfig, TrainConfig, limit
from mke_experiments.tasks.registry import Task, data_dir_or_error, register_task
from mke_theory.core.errors import MKEError
from mke_theory.core.split import MultimodalSplit


@dataclass(frozen=True)
class RavdessData:
    split: str = limit("actor", choices=("actor", "random"))  # actor (speaker-independent) | random (leaky)
    labeled_actors: int = limit(4, 1)  # how many of the train actors (the lowest numbers) form D_l; the rest D_u
    split_seed: int = limit(0, 0)  # only for split=random


@dataclass(frozen=True)
class RavdessPrepare:
    frames: int = limit(4, 1)  # frames per clip
    size: int = limit(48, 8)  # face crop side in pixels
    n_mels: int = limit(40, 1)  # mel bands

    @classmethod
    def from_manifest(cls, params: dict) -> RavdessPrepare:
        return cls(frames=params["frames"], size=params["size"], n_mels=params["n_mels"])


def load(data: RavdessData, data_dir) -> MultimodalSplit:
    from mke_experiments.data import ravdess as rv

    cache = rv.load_cache(data_dir_or_error(data_dir, "ravdess"))
    frames = cache["frames"].scaled(0.0, 255.0)  # (n, K, 3, S, S) uint8 rows of the cache, read as [0, 1]
    logmel = cache["logmel"]  # (n, 1, M, T) float16 rows, dB
    labels, actors = cache["labels"], cache["actors"]
    if data.split == "actor":
        masks = rv.actor_split(actors)
        train_actors = np.unique(actors[masks["train"]])
        if len(train_actors) <= data.labeled_actors:
            raise MKEError(f"the cache holds {len(train_actors)} train actors (9–24); data.labeled_actors="
                             f"{data.labeled_actors} leaves none for D_u")
        labeled = masks["train"] & np.isin(actors, train_actors[: data.labeled_actors])
        unlabeled = masks["train"] & ~labeled
        val, test = masks["val"], masks["test"]
    else:
        masks = rv.random_split(len(labels), data.split_seed)
        order = np.flatnonzero(masks["train"])
        labeled = np.zeros(len(labels), bool)
        labeled[order[: max(1, len(order) // 4)]] = True
        unlabeled = masks["train"] & ~labeled
        val, test = masks["val"], masks["test"]
    if not (labeled.any() and unlabeled.any() and test.any()):
        raise MKEError("the cache has too few clips for a split with D_l, D_u and a test set; "
                         "prepare more actors (test 1–4, validation 5–8, train 9–24)")
    mean, std = logmel[labeled | unlabeled].moments()  # statistics of D_l ∪ D_u only: the validation and
    logmel = logmel.scaled(mean, std + 1e-6)  # test clips must not shape the training inputs
    val_part = dict(val_alpha=frames[val], val_beta=logmel[val], val_labels=labels[val]) if val.any() else {}
    return MultimodalSplit(
        labeled_alpha=frames[labeled], labels=labels[labeled],
        unlabeled_alpha=frames[unlabeled], unlabeled_beta=logmel[unlabeled], unlabeled_labels=labels[unlabeled],
        test_alpha=frames[test], test_beta=logmel[test], test_labels=labels[test], n_classes=8,
        name=f"ravdess-{data.split}" + ("-LEAKY" if data.split == "random" else ""), **val_part,
        meta=dict(split=data.split, leaky=data.split == "random",
                  prepared=RavdessPrepare.from_manifest(cache["manifest"]["params"])))


def prepare(raw_dir, out_dir, settings: RavdessPrepare, progress=None, workers=None) -> dict:
    from mke_experiments.data import ravdess as rv

    return rv.prepare(raw_dir, out_dir, frames=settings.frames, size=settings.size, n_mels=settings.n_mels,
                      progress=progress, workers=workers)


def smoke(folder) -> tuple:
    """Five actors (test 1, validation 5, train 9–11) of all eight emotions, 2 frames of 24×24."""
    from pathlib import Path

    from mke_experiments.testing.ravdess import make_ravdess_tree

    folder = Path(folder)
    raw = make_ravdess_tree(folder / "raw", actors=(1, 5, 9, 10, 11), emotions=range(1, 9))
    settings = RavdessPrepare(frames=2, size=24, n_mels=16)
    prepare(raw, folder / "cache", settings, workers=1)
    return folder / "cache", ("data.labeled_actors=1", "model.width=4", "model.hidden=16")


register_task(Task(
    name="ravdess",
    description="RAVDESS emotions: teacher on face frames, students on frames + log-mel audio (split by actor)",
    default_config=ExperimentConfig(
        task="ravdess", data=RavdessData(), prepare=RavdessPrepare(),
        model=ModelConfig(hidden=128, dropout=0.3, width=16, fusion="late", modality_dropout=0.1),
        train=TrainConfig(epochs=30, batch_size=32, lr=1e-3),
        mke=MKEConfig(loss_form="consistency", gamma=1.0, input_noise=0.1)),
    load=load,
    prepare=prepare,
    ignores=("model.backbone", "model.pretrained", "model.weights"),  # small CNN encoders, no torchvision ResNet
    smoke=smoke,
    shapes=lambda c: ((c.prepare.frames, 3, c.prepare.size, c.prepare.size), (1, c.prepare.n_mels, 301), 8, ()),
))
