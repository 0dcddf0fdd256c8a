"""Task ``nyudv2``: semantic segmentation, RGB teacher → RGB-D student (the paper's NYU table).

``mke-exp prepare nyudv2 --raw nyu_depth_v2_labeled.mat --out CACHE`` reads the real MATLAB v7.3
file, maps the 894 classes to the standard 40 (void ignored), applies the standard 795/654 split,
holds ``prepare.val`` of the 795 out for validation and divides the rest into D_l (labeled RGB) and
D_u (unlabeled RGB-D) by ``prepare.labeled_fraction`` — the library's choice: the paper's cut was
not recovered. Depth enters as normalised metres or, with ``data.depth=hha`` (after ``prepare.hha=true``),
as HHA.
Metric: mIoU from one confusion matrix over the whole test set (void ignored), pixel accuracy and
per-class IoU. The paper's numbers stand beside ours in ``make figures`` as a reference column.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from mke_experiments.config import ExperimentConfig, MKEConfig, ModelConfig, TrainConfig, limit
from mke_experiments.metrics import segmentation_metrics
from mke_experiments.tasks.registry import Task, data_dir_or_error, register_task
from mke_theory.core.errors import MKEError
from mke_theory.core.split import MultimodalSplit
from mke_theory.results.reference import PAPER_NYUDV2

RGB_MEAN = np.array([0.485, 0.456, 0.406], np.float32)[:, None, None]  # ImageNet statistics
RGB_STD = np.array([0.229, 0.224, 0.225], np.float32)[:, None, None]


MAX_SIDE = 4096  # pixels of an image side (NYU's are 480 × 640); 100000,100000 would ask for 37 GiB an image


def _hw(text: str, key: str) -> tuple[int, int]:
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2 or not all(re.fullmatch(r"[0-9]{1,9}", p) and int(p) > 0 for p in parts):
        raise MKEError(f"{key} must be H,W in pixels, e.g. 240,320; got {text!r}")
    if max(map(int, parts)) > MAX_SIDE:
        h, w = map(int, parts)
        raise MKEError(f"{key}={text} asks for {h * w * 4:,} bytes an image (RGB and depth at a byte each at "
                       f"least), {h * w * 4 * 1449 / 2**40:.3g} TiB for NYU's 1449; each side may be at most "
                       f"{MAX_SIDE} pixels")
    return int(parts[0]), int(parts[1])


@dataclass(frozen=True)
class NyuData:
    depth: str = limit("metres", choices=("metres", "hha"))  # metres: normalised depth, 1 channel; hha: 3 channels
    crop: str = "224,288"  # training crop H,W (joint random scale, crop and flip)

    def validate(self):
        _hw(self.crop, "data.crop")

    def hw(self, key: str) -> tuple[int, int]:
        return _hw(getattr(self, key), f"data.{key}")


@dataclass(frozen=True)
class NyuPrepare:
    size: str = "240,320"  # H,W the images are resized to
    val: int = limit(100, 0)  # images of the 795 held out for validation
    labeled_fraction: float = limit(0.25, 0, 1, low_open=True, high_open=True)  # share of the rest that forms D_l
    split_seed: int = limit(0, 0)  # which images go to val / D_l / D_u
    hha: bool = False  # also store the HHA encoding of depth (needed by data.depth=hha)

    def validate(self):
        _hw(self.size, "prepare.size")

    @classmethod
    def from_manifest(cls, params: dict) -> NyuPrepare:
        return cls(size=f"{params['size'][0]},{params['size'][1]}", val=params["val"],
                   labeled_fraction=params["labeled_fraction"], split_seed=params["split_seed"], hha=params["hha"])


def load(data: NyuData, data_dir) -> MultimodalSplit:
    from mke_experiments.data import nyudv2 as nyu

    cache = nyu.load_cache(data_dir_or_error(data_dir, "nyudv2"))
    if data.depth == "hha" and "hha" not in cache:
        raise MKEError("this cache has no HHA; prepare it again with --set prepare.hha=true")
    rgb = cache["rgb"].scaled(255.0 * RGB_MEAN.astype(np.float64), 255.0 * RGB_STD.astype(np.float64))  # (n, 3, H, W)
    # uint8 rows of the cache, read per batch as (x / 255 − mean) / std per channel
    if data.depth == "hha":
        depth = cache["hha"].scaled(127.5, 255.0)  # x / 255 − 0.5
    else:
        d = cache["depth"]  # metres
        mean, std = d[cache["part"] == "unlabeled"].moments()  # statistics of training data only
        depth = d.scaled(mean, std + 1e-6)
    labels = cache["labels"].astype(np.int16) - 1  # 1..40 → 0..39; void 0 → IGNORE (−1)
    part = cache["part"]
    take = {name: part == name for name in ("labeled", "unlabeled", "val", "test")}
    val = dict(val_alpha=rgb[take["val"]], val_beta=depth[take["val"]], val_labels=labels[take["val"]]) \
        if take["val"].any() else {}
    return MultimodalSplit(
        labeled_alpha=rgb[take["labeled"]], labels=labels[take["labeled"]],
        unlabeled_alpha=rgb[take["unlabeled"]], unlabeled_beta=depth[take["unlabeled"]],
        unlabeled_labels=labels[take["unlabeled"]],
        test_alpha=rgb[take["test"]], test_beta=depth[take["test"]], test_labels=labels[take["test"]],
        n_classes=40, name=f"nyudv2-{data.depth}", **val,
        meta=dict(depth=data.depth, prepared=NyuPrepare.from_manifest(cache["manifest"]["params"])))


def prepare(raw_dir, out_dir, settings: NyuPrepare, progress=None, workers=None) -> dict:
    from mke_experiments.data import nyudv2 as nyu

    return nyu.prepare(raw_dir, out_dir, size=_hw(settings.size, "prepare.size"), val=settings.val,
                       labeled_fraction=settings.labeled_fraction, split_seed=settings.split_seed, hha=settings.hha,
                       progress=progress, workers=workers)


def evaluate(pred: np.ndarray, labels: np.ndarray, n_classes: int) -> dict:
    """mIoU, pixel accuracy and per-class IoU named by NYU's 40 classes (``metrics.segmentation_metrics``)."""
    from mke_experiments.data.nyudv2 import CLASS_NAMES

    return segmentation_metrics(pred, labels, n_classes, class_names=CLASS_NAMES)


def joint_augment(cfg: ExperimentConfig):
    """Random scale (0.75–1.25), crop to ``data.crop`` and horizontal flip, the same for RGB, depth and labels."""
    from mke_experiments.perturbations import joint_scale_crop_flip

    return joint_scale_crop_flip(cfg.data.hw("crop"))


def photometric_perturbation(cfg: ExperimentConfig):
    """T for segmentation: colour jitter on RGB (brightness and contrast ±20 % per image) and relative
    Gaussian noise of strength ``mke.input_noise`` on depth (``perturbations.photometric``)."""
    from mke_experiments.perturbations import photometric

    return photometric(cfg.mke.input_noise)


def build_teacher(split, cfg: ModelConfig):
    from mke_experiments.models.segmentation import SegTeacher

    return SegTeacher(split.n_classes, cfg, cfg.dropout)


def build_student(split, cfg: ModelConfig, regularised: bool):
    from mke_experiments.models.segmentation import SegStudent

    return SegStudent(split.n_classes, split.beta_shape[0], cfg, cfg.dropout if regularised else 0.0,
                      cfg.modality_dropout if regularised else 0.0)


def smoke(folder) -> tuple:
    """Nine 48×64 images (a format-exact v7.3 file), split 4 train / 1 val / 4 test, 32×48 crops."""
    from pathlib import Path

    from mke_experiments.data import nyudv2 as nyu
    from mke_experiments.testing.nyudv2 import make_labeled_mat, small_split

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    mat = make_labeled_mat(folder / "nyu_depth_v2_labeled.mat", n=9)
    nyu.prepare(mat, folder / "cache", size=(48, 64), val=1, labeled_fraction=0.4, split=small_split(9), workers=1)
    return folder / "cache", ("data.crop=32,48", "train.batch_size=4")


DEFAULT = ExperimentConfig(
    task="nyudv2", data=NyuData(), prepare=NyuPrepare(),
    model=ModelConfig(backbone="resnet18", dropout=0.1, modality_dropout=0.0),
    train=TrainConfig(epochs=40, batch_size=8, lr=1e-3, weight_decay=1e-4),
    mke=MKEConfig(loss_form="consistency", gamma=1.0, input_noise=0.1),
)

register_task(Task(
    name="nyudv2",
    description="NYU Depth V2 segmentation (40 classes): RGB teacher, RGB-D student, mIoU",
    default_config=DEFAULT, load=load, prepare=prepare,
    evaluate=evaluate, primary="miou",
    build_teacher=build_teacher, build_student=build_student,
    augment=joint_augment, perturb=photometric_perturbation, examples=4,
    ignores=("model.hidden", "model.width", "model.fusion"),  # ResNet encoders, features summed into one head
    smoke=smoke,
    shapes=lambda c: ((3, *c.data.hw("crop")), (1 if c.data.depth == "metres" else 3, *c.data.hw("crop")), 40,
                      c.data.hw("crop")),
    reference=PAPER_NYUDV2,  # the paper's table, mIoU %
))
