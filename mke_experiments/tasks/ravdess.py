"""Task ``ravdess``: emotion recognition, teacher on face frames (α), students on frames + audio (β).

``mke-exp prepare ravdess --raw DIR --out CACHE`` reads the real tree (``Actor_XX/01-01-*.mp4``
with ``03-01-*.wav``), crops faces, samples frames and computes log-mel spectrograms
(``mke_experiments.data.ravdess``). Default split by actor: test 1–4, validation 5–8, and the
train actors (every other actor in the cache) divided into D_l and D_u by actor (the lowest
``labeled_actors``). The actor lists are configuration (``test_actors``, ``val_actors``, ``dl_actors``:
"1-4", "5,19"), so a cache of a few actors still gives a speaker-independent test set;
``labeled_split=clip`` cuts the train actors' clips (not the actors) into D_l and D_u when there are
too few train actors for both, keeping test and validation actor-disjoint. ``split=random`` gives
MST-Distill's per-clip 60/20/20 split, which lets actors leak between train and test.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mke_experiments.config import ExperimentConfig, MKEConfig, ModelConfig, TrainConfig, limit
from mke_experiments.tasks.registry import Task, data_dir_or_error, register_task
from mke_theory.core.errors import MKEError
from mke_theory.core.split import MultimodalSplit

ACTOR_LISTS = ("test_actors", "val_actors", "dl_actors")  # the RavdessData fields that name actors
ACTOR_LIST_RULE = 'write actor numbers 1–24 as ranges and single numbers, e.g. "1-4" or "5,19"'


@dataclass(frozen=True)
class RavdessData:
    split: str = limit("actor", choices=("actor", "random"))  # actor (speaker-independent) | random (leaky)
    labeled_actors: int = limit(4, 1)  # how many of the train actors (the lowest numbers) form D_l; the rest D_u
    split_seed: int = limit(0, 0)  # split=random and labeled_split=clip: which clips go where
    # The actor lists (split=actor) are strings, one value per field in --set and YAML: "1-4", "5,19", "1-4,19";
    # "" names none. Added after records existed: recorded only when set, so the default's records keep their hash.
    test_actors: str = limit("1-4", record="if_set")  # the test set's actors
    val_actors: str = limit("5-8", record="if_set")  # the validation set's actors ("": none; model selection then
    # falls back to each model's last epoch, with a warning, unless train.selection=agreement)
    dl_actors: str = limit("", record="if_set")  # the train actors forming D_l ("": the lowest labeled_actors)
    labeled_split: str = limit("actor", choices=("actor", "clip"), record="if_set")  # how the train actors' clips
    # are cut into D_l and D_u: by actor, or by clip (labeled_fraction of them, drawn with split_seed) when the
    # cache holds too few train actors for both; test and validation stay actor-disjoint either way
    labeled_fraction: float = limit(0.25, 0, 1, low_open=True, high_open=True, record="if_set")  # share of the
    # train clips forming D_l under labeled_split=clip or split=random

    def validate(self):
        """The actor lists parse and do not overlap, and no setting is given that this split does not read."""
        defaults = RavdessData()
        if self.split == "random":
            unread = [f"data.{name}" for name in (*ACTOR_LISTS, "labeled_split")
                      if getattr(self, name) != getattr(defaults, name)]
            if unread:
                raise MKEError(f"{', '.join(unread)} {'is' if len(unread) == 1 else 'are'} read only with "
                               "data.split=actor, not data.split=random (a per-clip split): set data.split=actor or "
                               "leave them out")
            return
        test, val, dl = (parse_actors(getattr(self, name), f"data.{name}") for name in ACTOR_LISTS)
        if not test:
            raise MKEError(f"data.test_actors is empty; name the test set's actors ({ACTOR_LIST_RULE})")
        pairs = ((("test_actors", test), ("val_actors", val)), (("test_actors", test), ("dl_actors", dl)),
                 (("val_actors", val), ("dl_actors", dl)))
        for (first, a), (second, b) in pairs:
            both = sorted(set(a) & set(b))
            if both:
                raise MKEError(f"actor{'s' if len(both) > 1 else ''} {_names(both)} {'are' if len(both) > 1 else 'is'} "
                               f"in both data.{first}={getattr(self, first)!r} and data.{second}="
                               f"{getattr(self, second)!r}; each actor's clips belong to one part, so remove "
                               f"{'them' if len(both) > 1 else 'it'} from one of the two")
        if dl and self.labeled_split == "clip":
            raise MKEError("data.dl_actors names D_l's actors, which data.labeled_split=clip does not use (it draws "
                           "D_l's clips from every train actor): leave one of the two out")
        if dl and self.labeled_actors != defaults.labeled_actors:
            raise MKEError(f"data.dl_actors={self.dl_actors!r} and data.labeled_actors={self.labeled_actors} both "
                           "choose D_l's actors: set only one")
        if self.labeled_split == "actor" and self.labeled_fraction != defaults.labeled_fraction:
            raise MKEError("data.labeled_fraction is read only with data.labeled_split=clip or data.split=random: set "
                           "data.labeled_split=clip or leave data.labeled_fraction out")


def parse_actors(text: str, key: str = "actors") -> tuple[int, ...]:
    """The sorted actor numbers of an actor list: ``"1-4"`` → (1, 2, 3, 4), ``"5,19"``, ``"1-4, 19"``; ``""`` → ().

    Raises
    ------
    MKEError
        naming ``key`` and the rule when a part is not a number or a range of actors 1–24.
    """
    actors: set[int] = set()
    for part in str(text).replace(" ", "").split(","):
        if not part:
            continue
        low, dash, high = part.partition("-")
        try:
            first, last = int(low), int(high if dash else low)
        except ValueError:
            raise MKEError(f"{key}={text!r}: {part!r} is not an actor number or range; {ACTOR_LIST_RULE}") from None
        if not 1 <= first <= last <= 24:
            raise MKEError(f"{key}={text!r}: {part!r} is not a range of actors within 1–24 (low to high); "
                           f"{ACTOR_LIST_RULE}")
        actors.update(range(first, last + 1))
    return tuple(sorted(actors))


def _names(actors) -> str:
    """``1, 2, 5`` for a message (``none`` when empty)."""
    return ", ".join(str(int(a)) for a in actors) or "none"


@dataclass(frozen=True)
class RavdessPrepare:
    frames: int = limit(4, 1)  # frames per clip
    size: int = limit(48, 8)  # face crop side in pixels
    n_mels: int = limit(40, 1)  # mel bands
    seconds: float = limit(3.7, 0, low_open=True)  # audio crop: the mean length of the 1440 speech wavs (a 3.0 s
    # crop dropped 0.7 s of the average clip; measured in docs/experiments.md, "ravdess")

    @classmethod
    def from_manifest(cls, params: dict) -> RavdessPrepare:
        return cls(frames=params["frames"], size=params["size"], n_mels=params["n_mels"], seconds=params["seconds"])

    def n_times(self) -> int:
        """Log-mel frames of a clip: librosa's centred frames of a 10 ms hop at 16 kHz (``media.clip_params``)."""
        return 1 + int(round(self.seconds * 16000)) // 160


def load(data: RavdessData, data_dir) -> MultimodalSplit:
    from mke_experiments.data import ravdess as rv

    folder = data_dir_or_error(data_dir, "ravdess")
    cache = rv.load_cache(folder)
    frames = cache["frames"].scaled(0.0, 255.0)  # (n, K, 3, S, S) uint8 rows of the cache, read as [0, 1]
    logmel = cache["logmel"]  # (n, 1, M, T) float16 rows, dB
    labels, actors = cache["labels"], cache["actors"]
    if data.split == "actor":
        labeled, unlabeled, val, test = actor_parts(data, actors, folder)
    else:
        masks = rv.random_split(len(labels), data.split_seed)
        order = np.flatnonzero(masks["train"])
        labeled = np.zeros(len(labels), bool)
        labeled[order[: max(1, int(data.labeled_fraction * len(order)))]] = True  # 0.25: the quarter it always was
        unlabeled = masks["train"] & ~labeled
        val, test = masks["val"], masks["test"]
        if not (labeled.any() and unlabeled.any() and test.any()):
            raise MKEError(f"the cache in {folder} has {len(labels)} clips, too few for a per-clip split with D_l, "
                           "D_u and a test set; prepare more clips")
    mean, std = logmel[labeled | unlabeled].moments()  # statistics of D_l ∪ D_u only: the validation and
    logmel = logmel.scaled(mean, std + 1e-6)  # test clips must not shape the training inputs
    val_part = dict(val_alpha=frames[val], val_beta=logmel[val], val_labels=labels[val]) if val.any() else {}
    return MultimodalSplit(
        labeled_alpha=frames[labeled], labels=labels[labeled],
        unlabeled_alpha=frames[unlabeled], unlabeled_beta=logmel[unlabeled], unlabeled_labels=labels[unlabeled],
        test_alpha=frames[test], test_beta=logmel[test], test_labels=labels[test], n_classes=8,
        name=f"ravdess-{data.split}" + ("-LEAKY" if data.split == "random" else ""), **val_part,
        meta=dict(split=data.split, leaky=data.split == "random",
                  actors={part: sorted(int(a) for a in np.unique(actors[mask])) for part, mask in
                          (("labeled", labeled), ("unlabeled", unlabeled), ("val", val), ("test", test))},
                  prepared=RavdessPrepare.from_manifest(cache["manifest"]["params"])))


def actor_parts(data: RavdessData, actors: np.ndarray, folder) -> tuple[np.ndarray, ...]:
    """(D_l, D_u, validation, test) boolean masks over the cache's clips for ``split=actor``.

    Test and validation hold the clips of ``data.test_actors`` and ``data.val_actors``; every other actor of
    the cache is a train actor. D_l is ``data.dl_actors`` (or the lowest ``data.labeled_actors`` train
    actors) and D_u the other train actors; with ``labeled_split=clip`` D_l is instead a seeded
    ``labeled_fraction`` of the train actors' clips, D_u the rest (D_l and D_u then share actors; test and
    validation never do). An actor list set away from its default must name actors the cache holds (the
    defaults describe the full 24 actors and may name absent ones); every error is one sentence naming the
    fields to set and the actors the cache holds.
    """
    defaults = RavdessData()
    held = sorted(int(a) for a in np.unique(actors))
    holds = f"the cache in {folder} holds actors {_names(held)}"
    lists = {name: parse_actors(getattr(data, name), f"data.{name}") for name in ACTOR_LISTS}
    for name, named in lists.items():
        missing = sorted(set(named) - set(held))
        if missing and getattr(data, name) != getattr(defaults, name):
            raise MKEError(f"data.{name}={getattr(data, name)!r} names actor{'s' if len(missing) > 1 else ''} "
                           f"{_names(missing)}, not in the cache in {folder}, which holds actors {_names(held)}: "
                           "name some of those")
    test, val = np.isin(actors, lists["test_actors"]), np.isin(actors, lists["val_actors"])
    if not test.any():
        raise MKEError(f"{holds} and none of the test actors {_names(lists['test_actors'])}: set data.test_actors "
                       f"to some of the actors it holds (e.g. --set data.test_actors={held[-1]})")
    train = ~(test | val)
    train_actors = sorted(set(held) - set(lists["test_actors"]) - set(lists["val_actors"]))
    what = "are train actors" if len(train_actors) != 1 else "is the only train actor"
    where = f"{holds}, of which {_names(train_actors)} {what} (in neither data.test_actors nor data.val_actors)"
    if data.labeled_split == "clip":
        order = np.random.default_rng(data.split_seed).permutation(np.flatnonzero(train))
        if len(order) < 2:
            raise MKEError(f"{where} with {len(order)} clip(s): D_l and D_u need at least one clip each, so move "
                           "actors out of data.test_actors or data.val_actors")
        labeled = np.zeros(len(actors), bool)
        labeled[order[: min(len(order) - 1, max(1, int(data.labeled_fraction * len(order))))]] = True
        return labeled, train & ~labeled, val, test
    if lists["dl_actors"]:
        dl_actors, chosen = list(lists["dl_actors"]), f"data.dl_actors={data.dl_actors!r}"
    else:
        dl_actors, chosen = train_actors[: data.labeled_actors], f"data.labeled_actors={data.labeled_actors}"
    labeled = np.isin(actors, dl_actors) & train
    unlabeled = train & ~labeled
    if not (labeled.any() and unlabeled.any()):
        short = "D_l" if not labeled.any() else "D_u"
        raise MKEError(f"{where}; {chosen} leaves none for {short}: name fewer or other D_l actors with "
                       "data.dl_actors, move actors out of data.test_actors or data.val_actors, or set "
                       "data.labeled_split=clip to cut the train actors' clips into D_l and D_u (test stays "
                       "actor-disjoint)")
    return labeled, unlabeled, val, test


def prepare(raw_dir, out_dir, settings: RavdessPrepare, progress=None, workers=None) -> dict:
    from mke_experiments.data import ravdess as rv

    return rv.prepare(raw_dir, out_dir, frames=settings.frames, size=settings.size, n_mels=settings.n_mels,
                      seconds=settings.seconds, progress=progress, workers=workers)


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
    ignores=("model.backbone", "model.pretrained", "model.weights", "model.seg_head"),  # small CNNs, no ResNet
    smoke=smoke,
    shapes=lambda c: ((c.prepare.frames, 3, c.prepare.size, c.prepare.size), (1, c.prepare.n_mels, c.prepare.n_times()),
                      8, ()),
))
