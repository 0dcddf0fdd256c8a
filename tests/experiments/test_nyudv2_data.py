"""NYU Depth V2: the shipped meta facts, the v7.3 reader, the prepare cache, HHA and mIoU on tiny fixtures."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")

from mke_experiments.data import nyudv2, resizing  # noqa: E402
from mke_experiments.data.nyudv2 import (  # noqa: E402
    CLASS_NAMES,
    MANIFEST_NAME,
    NYU_INTRINSICS,
    NyuError,
    encode_hha,
    label_lut,
    load_cache,
    meta,
    prepare,
    read_labeled_mat,
    read_names,
    scaled_intrinsics,
    standard_split,
)
from mke_experiments.data.rows import LazyRows  # noqa: E402
from mke_experiments.testing.nyudv2 import (  # noqa: E402
    CEILING,
    FLOOR,
    WALL,
    make_bad_files,
    make_labeled_mat,
    small_split,
)

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "nyuv2"
N_FIXTURE = 10
# 8 train → 2 val, 3 D_l, 3 D_u; decoded in this process, 4 images per shard
SMALL = {"val": 2, "labeled_fraction": 0.5, "split": small_split(N_FIXTURE), "workers": 1, "shard_size": 4}


@pytest.fixture(scope="module")
def mat(tmp_path_factory) -> Path:
    return make_labeled_mat(tmp_path_factory.mktemp("raw") / "nyu_depth_v2_labeled.mat", n=N_FIXTURE)


@pytest.fixture(scope="module")
def bad(tmp_path_factory) -> dict[str, Path]:
    return make_bad_files(tmp_path_factory.mktemp("bad"))


def read_all(folder: Path) -> dict:
    """``load_cache`` with every ``LazyRows`` read in its stored dtype."""
    return {k: v.read() if isinstance(v, LazyRows) else v for k, v in load_cache(folder).items()}


def raw_arrays(path: Path) -> dict[str, np.ndarray]:
    """The fixture's arrays the way the real-file idioms read them (A2.1), (n, H, W[, 3])."""
    with h5py.File(path, "r") as f:
        return {"image": np.transpose(f["images"][()], (0, 3, 2, 1)), "depth": f["depths"][()].transpose(0, 2, 1),
                "label": f["labels"][()].transpose(0, 2, 1), "raw_depth": f["rawDepths"][()].transpose(0, 2, 1)}


# ---- shipped meta ---------------------------------------------------------------------------------
@pytest.mark.skipif(not (SHARED / "splits.mat").is_file(), reason="the shared NYU meta files are not here")
def test_shipped_meta_equals_the_real_meta_files():
    import scipy.io

    splits = scipy.io.loadmat(SHARED / "splits.mat")
    mapping = scipy.io.loadmat(SHARED / "classMapping40.mat")
    data = meta()
    assert data["train_indices"] == splits["trainNdxs"][:, 0].astype(int).tolist()
    assert data["test_indices"] == splits["testNdxs"][:, 0].astype(int).tolist()
    assert data["map_894_to_40"] == mapping["mapClass"][0].astype(int).tolist()
    assert data["class_names_40"] == [str(x[0]) for x in mapping["className"][0]]
    assert data["names_894"] == [str(x[0]) for x in mapping["allClassName"][0]]


def test_shipped_meta_has_the_documented_facts():
    data = meta()
    mapping = np.asarray(data["map_894_to_40"], dtype=np.int64)
    assert hashlib.sha256(mapping.tobytes()).hexdigest() == data["sha256_map"] == nyudv2.SHA256_MAP
    assert mapping.tolist()[:20] == [40, 40, 3, 22, 5, 40, 12, 38, 40, 40, 2, 39, 40, 40, 26, 40, 24, 40, 7, 40]
    assert len(mapping) == 894 and mapping.min() == 1 and mapping.max() == 40
    assert [(mapping == k).sum() for k in (40, 39, 38)] == [707, 82, 68]
    names = data["names_894"]
    for name, raw_id, class40 in [("wall", 21, 1), ("floor", 11, 2), ("ceiling", 4, 22), ("person", 331, 31),
                                  ("unknown", 20, 40)]:
        assert names[raw_id - 1] == name and mapping[raw_id - 1] == class40
    assert names[:5] == ["book", "bottle", "cabinet", "ceiling", "chair"]
    assert list(CLASS_NAMES) == data["class_names_40"] and len(CLASS_NAMES) == 40
    assert CLASS_NAMES[0] == "wall" and CLASS_NAMES[23] == "refridgerator" and CLASS_NAMES[39] == "otherprop"
    assert "ankurhanda/nyuv2-meta-data" in data["source"]

    split = standard_split()
    train, test = split["train"], split["test"]
    assert (len(train), len(test)) == (795, 654)
    assert not set(train) & set(test) and sorted({*train, *test}) == list(range(1, 1450))
    assert train[:10].tolist() == [3, 4, 5, 6, 7, 8, 10, 11, 12, 13]
    assert test[:10].tolist() == [1, 2, 9, 14, 15, 16, 17, 18, 21, 28]


def test_label_lut_keeps_void_and_maps_894_to_40():
    lut = label_lut()
    assert lut.shape == (895,) and lut.dtype == np.int64
    assert lut[0] == 0 and lut[WALL] == 1 and lut[FLOOR] == 2 and lut[CEILING] == 22 and lut[331] == 31
    assert lut[1:].tolist() == meta()["map_894_to_40"]


# ---- the fixture is a v7.3 file like the real one -------------------------------------------------
def test_fixture_looks_like_the_real_v73_file(mat):
    import scipy.io

    with pytest.raises(NotImplementedError, match="v7.3"):
        scipy.io.loadmat(mat)
    head = mat.read_bytes()[:128]
    assert head.startswith(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: ")
    assert b"HDF5 schema 1.00 ." in head[:116] and head[116:124] == bytes(8) and head[124:128] == b"\x00\x02IM"
    with h5py.File(mat, "r") as f:
        assert f.userblock_size == 512
        assert sorted(f.keys()) == ["#refs#", "#subsystem#", "accelData", "depths", "images", "instances",
                                    "labels", "names", "namesToIds", "rawDepthFilenames", "rawDepths",
                                    "rawRgbFilenames", "sceneTypes", "scenes"]
        assert f["images"].shape == (N_FIXTURE, 3, 64, 48) and f["images"].dtype == np.uint8
        assert f["labels"].shape == (N_FIXTURE, 64, 48) and f["labels"].dtype == np.uint16
        assert f["accelData"].shape == (4, N_FIXTURE) and f["names"].shape == (1, 894)
        assert f["depths"].attrs["MATLAB_class"] == b"single" and f["names"].attrs["MATLAB_class"] == b"cell"
        chars = f[f["names"][0][20]]  # through the object reference, as the real-file idiom
        assert chars.shape == (4, 1) and chars.attrs["MATLAB_class"] == b"char"
        assert "".join(chr(c[0]) for c in chars[()]) == "wall"
        assert chars[()].tobytes().decode("utf-16") == "wall"
        depths = f["depths"][()]
        assert 0.7 <= depths.min() and depths.max() <= 10.0
    assert read_names(mat) == meta()["names_894"]


def test_read_labeled_mat_reverses_the_axes(mat):
    raw = raw_arrays(mat)
    items = list(read_labeled_mat(mat, [3, 1]))
    assert [item["index"] for item in items] == [3, 1]
    first = items[1]
    assert first["image"].shape == (48, 64, 3) and first["image"].dtype == np.uint8
    assert first["depth"].shape == (48, 64) and first["depth"].dtype == np.float32
    assert first["label"].shape == (48, 64) and first["label"].dtype == np.uint16
    np.testing.assert_array_equal(first["image"], raw["image"][0])
    np.testing.assert_array_equal(items[0]["label"], raw["label"][2])
    # the fixture's room is upright: void border, wall (or ceiling) at the top, floor at the bottom
    assert (first["label"][[0, 1, -2, -1]] == 0).all() and (first["label"][:, [0, 1, -2, -1]] == 0).all()
    assert first["label"][3, 60] in (WALL, CEILING) and FLOOR not in first["label"][:6]
    assert (first["label"][-3] == FLOOR).any()
    assert len(list(read_labeled_mat(mat))) == N_FIXTURE
    (with_raw,) = read_labeled_mat(mat, [2], raw_depths=True)
    np.testing.assert_array_equal(with_raw["raw_depth"], raw["raw_depth"][1])
    assert (with_raw["raw_depth"] == 0).any()  # holes mean "missing"
    with pytest.raises(NyuError, match=r"image number 11 is outside 1\.\.10.*1449"):
        read_labeled_mat(mat, [1, 11])


# ---- prepare --------------------------------------------------------------------------------------
def test_prepare_keeps_pixels_maps_labels_and_cuts_the_parts(mat, tmp_path):
    calls = []
    manifest = prepare(mat, tmp_path / "cache", size=(48, 64), progress=calls.append, **SMALL)
    assert manifest["reused"] is False and manifest["complete"] is True and calls == [4, 4, 2]
    lazy = load_cache(tmp_path / "cache")
    assert all(isinstance(lazy[name], LazyRows) for name in ("rgb", "depth"))
    assert all(type(lazy[name]) is np.ndarray for name in ("labels", "part", "index"))
    cache = read_all(tmp_path / "cache")
    raw = raw_arrays(mat)
    assert cache["rgb"].shape == (N_FIXTURE, 3, 48, 64) and cache["rgb"].dtype == np.uint8
    assert cache["depth"].shape == (N_FIXTURE, 1, 48, 64) and cache["depth"].dtype == np.float32
    assert cache["labels"].shape == (N_FIXTURE, 48, 64) and cache["labels"].dtype == np.uint8
    assert "hha" not in cache
    assert cache["index"].tolist() == list(range(1, N_FIXTURE + 1))
    # same size: pixels untouched, depth in metres, labels mapped through the lut
    np.testing.assert_array_equal(cache["rgb"], raw["image"].transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(cache["depth"][:, 0], raw["depth"])
    np.testing.assert_array_equal(cache["labels"], label_lut()[raw["label"]])
    y, x = np.argwhere(raw["label"][0] == WALL)[0]
    assert cache["labels"][0, y, x] == 1  # wall 21 → 1
    y, x = np.argwhere(raw["label"][0] == FLOOR)[0]
    assert cache["labels"][0, y, x] == 2  # floor 11 → 2
    assert raw["label"][0, 0, 0] == 0 and cache["labels"][0, 0, 0] == 0  # void stays void
    assert set(np.unique(cache["labels"])) <= set(range(41))

    parts = {name: cache["index"][cache["part"] == name].tolist() for name in nyudv2.PARTS}
    assert parts["test"] == [9, 10]
    assert [len(parts[name]) for name in ("val", "labeled", "unlabeled")] == [2, 3, 3]
    assert sorted(parts["val"] + parts["labeled"] + parts["unlabeled"]) == list(range(1, 9))
    assert manifest["counts"] == {"labeled": 3, "unlabeled": 3, "val": 2, "test": 2, "total": 10, "train": 8,
                                  "test_split": 2}
    assert sum(map(sum, manifest["class_pixels"].values())) == N_FIXTURE * 48 * 64
    assert manifest["class_pixels"]["test"][1] == int((cache["labels"][8:] == 1).sum())
    on_disk = json.loads((tmp_path / "cache" / MANIFEST_NAME).read_text())
    assert on_disk["params"]["split"].startswith("custom") and on_disk["versions"]["h5py"] == h5py.__version__
    assert "library's choice" in on_disk["split_note"]


def test_prepare_resizes_and_encodes_hha(mat, tmp_path):
    # the folder holding the file works too; two workers, each opening the file
    manifest = prepare(mat.parent, tmp_path, size=(24, 32), hha=True, **{**SMALL, "workers": 2})
    assert manifest["build"]["workers"] == 2
    cache = read_all(tmp_path)
    raw = raw_arrays(mat)
    assert cache["rgb"].shape == (N_FIXTURE, 3, 24, 32) and cache["labels"].shape == (N_FIXTURE, 24, 32)
    assert cache["hha"].shape == (N_FIXTURE, 3, 24, 32) and cache["hha"].dtype == np.uint8
    lut = label_lut()
    for i in range(N_FIXTURE):  # nearest neighbours: only labels and depths that exist in the original
        assert set(np.unique(cache["labels"][i])) <= set(np.unique(lut[raw["label"][i]]))
        assert set(np.unique(cache["depth"][i])) <= set(np.unique(raw["depth"][i]))
    assert 0.7 <= cache["depth"].min() and cache["depth"].max() <= 10.0
    np.testing.assert_array_equal(cache["labels"][:, 5, 7], lut[raw["label"][:, 10, 14]])  # floor(5 * 2)
    disparity = np.clip(np.rint(31000 / np.maximum(cache["depth"][:, 0] * 100, 100)), 0, 255)
    np.testing.assert_array_equal(cache["hha"][:, 0], disparity)
    wall, floor = cache["labels"] == 1, cache["labels"] == 2
    assert np.median(cache["hha"][:, 1][floor]) < np.median(cache["hha"][:, 1][wall])  # the floor is lower


def test_prepare_reuses_a_complete_cache_and_rebuilds_on_new_parameters(mat, tmp_path):
    first = prepare(mat, tmp_path, size=(24, 32), **SMALL)
    rgb = tmp_path / "arrays" / "rgb.npy"
    stamp = rgb.stat().st_mtime_ns
    calls = []
    again = prepare(mat, tmp_path, size=(24, 32), progress=calls.append, **SMALL)
    assert again["reused"] is True and calls == [N_FIXTURE]
    assert rgb.stat().st_mtime_ns == stamp and again["created"] == first["created"]
    parts = load_cache(tmp_path)["part"]

    other = prepare(mat, tmp_path, size=(24, 32), **{**SMALL, "split_seed": 1})
    assert other["reused"] is False and other["params"]["split_seed"] == 1
    assert not np.array_equal(load_cache(tmp_path)["part"], parts)  # 8 choose (2, 3, 3): seed 1 differs from 0
    assert prepare(mat, tmp_path, size=(24, 32), hha=True, **SMALL)["reused"] is False
    assert "hha" in load_cache(tmp_path)

    manifest = json.loads((tmp_path / MANIFEST_NAME).read_text())
    manifest["complete"] = False  # an interrupted run
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(manifest))
    assert prepare(mat, tmp_path, size=(24, 32), hha=True, **SMALL)["reused"] is False


def test_a_failed_prepare_keeps_the_previous_cache(mat, bad, tmp_path):
    prepare(mat, tmp_path, size=(24, 32), **SMALL)
    before = (tmp_path / "arrays" / "rgb.npy").read_bytes()
    with pytest.raises(NyuError, match="corrupt_chunk.mat cannot be read at image 2"):
        prepare(bad["corrupt_chunk"], tmp_path, size=(24, 32), val=0, split={"train": [1, 2], "test": [3]},
                workers=1)
    assert (tmp_path / "arrays" / "rgb.npy").read_bytes() == before
    assert load_cache(tmp_path)["labels"].shape == (N_FIXTURE, 24, 32)


def test_prepare_refuses_the_standard_split_on_a_small_file(mat, tmp_path):
    with pytest.raises(NyuError, match=r"has 10 images but the split refers to image 1449.*re-download"):
        prepare(mat, tmp_path)
    assert not (tmp_path / "arrays").exists()


@pytest.mark.parametrize("options, message", [
    ({"size": (4, 4)}, "at least 8 pixels"),
    ({"size": 240}, "must be \\(height, width\\)"),
    ({"val": 7}, "both sets need at least one image"),
    ({"val": -1}, "whole number"),
    ({"labeled_fraction": 1.0}, "strictly between 0 and 1"),
    ({"labeled_fraction": 0.0}, "strictly between 0 and 1"),
    ({"split": {"train": [1, 2, 3, 4, 5], "test": [5, 6]}}, "both the train and the test split"),
    ({"split": {"train": [1, 2, 3, 4, 5]}}, "'train' and 'test'"),
])
def test_prepare_rejects_bad_options(mat, tmp_path, options, message):
    with pytest.raises(NyuError, match=message):
        prepare(mat, tmp_path, **{**SMALL, "val": 1, **options})


def test_prepare_names_a_folder_without_the_file(tmp_path):
    with pytest.raises(NyuError, match=f"folder {tmp_path} holds no nyu_depth_v2_labeled.mat"):
        prepare(tmp_path, tmp_path / "out")


# ---- files the loader refuses ---------------------------------------------------------------------
@pytest.mark.parametrize("kind, message", [
    ("missing", "does not exist"),
    ("mat_v5", "is not a MATLAB v7.3 \\(HDF5\\) file \\(it is an older MATLAB v5"),
    ("random", "is not a MATLAB v7.3 \\(HDF5\\) file"),
    ("empty", "is not a MATLAB v7.3 \\(HDF5\\) file"),
    ("truncated", "truncated or corrupt.*re-download it"),
    ("corrupt_chunk", "cannot be read at image 2.*re-download it"),
    ("no_labels", "lacks the dataset\\(s\\) 'labels'"),
    ("wrong_shape", "expected \\(N, 3, W, H\\)"),
])
def test_bad_files_raise_an_error_naming_the_file(bad, tmp_path, kind, message):
    path = bad[kind]
    with pytest.raises(NyuError, match=message) as info:
        list(read_labeled_mat(path))
    assert str(path) in str(info.value) and isinstance(info.value, ValueError)
    with pytest.raises(NyuError, match=message):
        prepare(path, tmp_path, val=0, split={"train": [1, 2], "test": [3]})


def test_load_cache_names_the_file_and_the_fix(mat, tmp_path):
    with pytest.raises(NyuError, match="does not exist.*mke-exp prepare nyudv2 --raw FILE"):
        load_cache(tmp_path / "nowhere")
    with pytest.raises(NyuError, match=f"{tmp_path / MANIFEST_NAME} is missing.*mke-exp prepare nyudv2"):
        load_cache(tmp_path)
    prepare(mat, tmp_path, size=(24, 32), **SMALL)
    depth = tmp_path / "arrays" / "depth.npy"
    data = depth.read_bytes()
    depth.write_bytes(data[: len(data) // 2])
    with pytest.raises(NyuError, match=f"{depth} is truncated.*--out {tmp_path}"):
        load_cache(tmp_path)
    (tmp_path / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(NyuError, match="manifest .* is corrupt.*mke-exp prepare nyudv2"):
        load_cache(tmp_path)


# ---- HHA and resizing -----------------------------------------------------------------------------
def test_scaled_intrinsics():
    assert scaled_intrinsics((480, 640)) == pytest.approx(NYU_INTRINSICS)
    fx, fy, cx, cy = scaled_intrinsics((240, 320))
    assert (fx, fy) == pytest.approx((518.8579 / 2, 519.4696 / 2)) and cx == pytest.approx((325.5824 + 0.5) / 2 - 0.5)


def test_hha_of_a_room_with_floor_wall_and_ceiling():
    height, width = 60, 80
    fx, fy, cx, cy = scaled_intrinsics((height, width))
    rows = np.arange(height, dtype=np.float64)[:, None] * np.ones((1, width))
    with np.errstate(divide="ignore"):
        floor_z = np.where(rows > cy, 1.30 * fy / (rows - cy), np.inf)  # the plane 1.30 m below the camera
        ceiling_z = np.where(rows < cy, 1.20 * fy / (cy - rows), np.inf)  # 1.20 m above it
    depth = np.minimum(np.minimum(floor_z, ceiling_z), 4.0)  # a wall facing the camera 4 m away
    floor, ceiling = floor_z < 4.0, ceiling_z < 4.0
    wall = ~(floor | ceiling)
    code = encode_hha(depth).astype(int)  # (3, H, W)
    assert code.shape == (3, height, width)

    np.testing.assert_array_equal(code[0], np.clip(np.rint(31000 / np.maximum(depth * 100, 100)), 0, 255))
    inner = np.zeros_like(wall)
    inner[:, 3:-3] = True
    far = lambda mask: mask & inner & ~np.roll(~mask, 3, 0) & ~np.roll(~mask, -3, 0)  # 3 px from other planes
    assert min(far(floor).sum(), far(wall).sum(), far(ceiling).sum()) >= 50
    assert np.abs(code[2][far(floor)] - 38).max() <= 1  # normal along "up": 0° + 38
    assert np.abs(code[2][far(wall)] - 128).max() <= 1  # vertical wall: 90° + 38
    assert np.abs(code[2][far(ceiling)] - 218).max() <= 1  # facing down: 180° + 38
    assert code[1][floor].max() <= 1  # the lowest points define the ground: the floor is at height 0
    row = int(np.flatnonzero(wall[:, 40])[len(np.flatnonzero(wall[:, 40])) // 2])
    assert code[1][row, 40] == np.clip(np.rint(-(row - cy) * 400 / fy + 130), 0, 255)  # cm above the floor

    missing = np.zeros_like(wall)
    missing[10:20, 10:20] = True
    assert (encode_hha(depth, missing=missing)[2][missing] == 218).all()  # no normal: 180°, as getHHA


def test_numpy_resize_matches_opencv():
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    labels = rng.integers(0, 895, (48, 64)).astype(np.uint16)
    for size in [(24, 32), (30, 50), (96, 128)]:
        linear = nyudv2._resize_numpy(image, size, linear=True)
        expected = cv2.resize(image, size[::-1], interpolation=cv2.INTER_LINEAR)
        assert np.abs(linear.astype(int) - expected).max() <= 1
        nearest = nyudv2._resize_numpy(labels.astype(np.float32), size, linear=False)
        np.testing.assert_array_equal(nearest, cv2.resize(labels.astype(np.float32), size[::-1],
                                                          interpolation=cv2.INTER_NEAREST))


def test_prepare_without_opencv_matches_opencv(mat, tmp_path, monkeypatch):
    pytest.importorskip("cv2")
    prepare(mat, tmp_path / "cv2", size=(24, 32), **SMALL)
    monkeypatch.setattr(resizing, "_cv2", lambda: None)
    manifest = prepare(mat, tmp_path / "numpy", size=(24, 32), **SMALL)
    assert manifest["encoding"]["resize"] == "numpy"
    with_cv2, without = read_all(tmp_path / "cv2"), read_all(tmp_path / "numpy")
    assert np.abs(with_cv2["rgb"].astype(int) - without["rgb"]).max() <= 1
    for name in ("depth", "labels", "part", "index"):
        np.testing.assert_array_equal(with_cv2[name], without[name])


# ---- mIoU -----------------------------------------------------------------------------------------
