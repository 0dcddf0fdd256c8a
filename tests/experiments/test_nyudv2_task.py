"""NYU Depth V2 as a task: prepare + run end to end on the fixture, the metric, the augmentation,
the qualitative figure and the table with the paper's reference column."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from mke_experiments.cli import cli
from mke_experiments.config import ModelConfig, apply_overrides
from mke_experiments.data.nyudv2 import prepare
from mke_experiments.protocol import run
from mke_experiments.tasks import get_task
from mke_experiments.tasks.nyudv2 import evaluate, joint_augment
from mke_experiments.testing.nyudv2 import make_labeled_mat, small_split

ROOT = Path(__file__).resolve().parents[2]
SMALL = ("train.epochs=1", "data.crop=32,48", "train.batch_size=4")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nyu")
    mat = make_labeled_mat(tmp / "nyu_depth_v2_labeled.mat", n=9)
    prepare(mat, tmp / "cache", size=(48, 64), val=1, labeled_fraction=0.4, split=small_split(9))
    return tmp / "cache"


def test_miou_from_one_confusion_matrix_with_void_ignored():
    # 2 images of 2×2 pixels, 3 classes; −1 is void
    labels = np.array([[[0, 0], [1, -1]], [[2, 2], [1, 1]]])
    pred = np.array([[[0, 1], [1, 2]], [[2, 0], [1, 1]]])
    m = evaluate(pred, labels, 40)
    # valid pixels: (0→0), (0→1), (1→1), (2→2), (2→0), (1→1), (1→1): confusion rows = truth
    # IoU_0 = 1 / (2 + 2 - 1) = 1/3; IoU_1 = 3 / (3 + 4 - 3) = 3/4; IoU_2 = 1 / (2 + 1 - 1) = 1/2
    assert m["miou"] == pytest.approx((1 / 3 + 3 / 4 + 1 / 2) / 3)
    assert m["pixel_accuracy"] == pytest.approx(5 / 7)
    assert m["iou_wall"] == pytest.approx(1 / 3) and "iou_floor_mat" not in m  # absent classes are left out


def test_joint_augmentation_keeps_images_and_labels_aligned():
    cfg = apply_overrides(get_task("nyudv2").default_config, ["data.crop=24,32"])
    augment = joint_augment(cfg)
    labels = torch.zeros(2, 40, 64, dtype=torch.long)
    labels[:, :, 20:] = 1
    labels[:, 25:, :] = 2
    image = labels[:, None].float().expand(2, 3, 40, 64).contiguous()
    depth = labels[:, None].float()
    for seed in range(5):
        (img, dep), lab = augment((image, depth), labels, torch.Generator().manual_seed(seed))
        assert img.shape == (2, 3, 24, 32) and lab.shape == (2, 24, 32)
        agree = (img[:, 0].round().long() == lab).float().mean()
        assert agree > 0.9 and torch.equal(dep[:, 0], img[:, 0])  # depth moves with the image


def test_prepare_then_run_writes_records_examples_and_the_figure(cache, tmp_path):
    runs = tmp_path / "runs" / "nyudv2"
    records = run("nyudv2", data_dir=cache, out=runs, seeds=(0,), device="cpu", overrides=SMALL)
    methods = {r["method"] for r in records}
    assert {"teacher", "um_student", "noisy_student", "mm_student_noreg", "mm_student"} <= methods
    for r in records:
        assert 0 <= r["metrics"]["test_miou"] <= 1 and "test_pixel_accuracy" in r["metrics"]
    assert len(list((runs / "examples").glob("nyudv2__*__seed0__*.npz"))) == len(methods)
    out = tmp_path / "figs"
    for script, args in (("nyudv2_figure", []), ("realdata_table", ["nyudv2"])):
        runs_arg = runs if script == "nyudv2_figure" else runs.parent
        done = subprocess.run([sys.executable, str(ROOT / "paper_figures" / f"{script}.py"), *args,
                               "--runs", str(runs_arg), "--out", str(out)], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    assert (out / "nyudv2_figure.png").stat().st_size > 0
    table = (out / "table_nyudv2.md").read_text()
    assert "48.88" in table and "| nyudv2 | mm_student |" in table  # the paper's number as reference


def test_soft_per_pixel_pseudo_labels(cache):
    records = run("nyudv2", data_dir=cache, seeds=(0,), methods=("teacher", "noisy_student", "mm_student"),
                  device="cpu", overrides=SMALL + ("mke.pseudo_labels=soft",))
    assert {r["method"] for r in records} == {"teacher", "noisy_student", "mm_student"}


def test_local_backbone_weights_load_and_bad_ones_are_named(tmp_path):
    import torchvision

    from mke_experiments.models.segmentation import resnet_encoder

    path = tmp_path / "resnet18.pt"
    reference = torchvision.models.resnet18()
    torch.save(reference.state_dict(), path)
    encoder = resnet_encoder(3, ModelConfig(weights=str(path)))
    assert torch.equal(encoder[0].weight, reference.conv1.weight)
    with pytest.raises(ValueError, match="not a usable resnet18 state dict"):
        resnet_encoder(3, ModelConfig(weights=str(tmp_path / "missing.pt")))


def test_cli_prepare_on_a_file_too_small_for_the_standard_split(tmp_path):
    mat = make_labeled_mat(tmp_path / "nyu_depth_v2_labeled.mat", n=4)
    result = CliRunner().invoke(cli, ["prepare", "nyudv2", "--raw", str(mat), "--out", str(tmp_path / "c")])
    assert result.exit_code == 1 and "1449" in result.output and "Traceback" not in result.output
