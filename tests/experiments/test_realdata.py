"""The readers on real files nobody on this team wrote: ``../shared/realdata`` (see its PROVENANCE.md), read in place
and never copied into the repository. Every test skips when the folder is absent (a user's clone, a CI machine
without it), as the NYU split tests do.

What each guards:
- HHA (``encode_hha``) on a real NYU-style depth frame against the reference HHA of Depth2HHA-python's getHHA, within
  the tolerances measured when this test was written (a swapped channel, a flipped gravity, the missing-depth mask
  ignored or another disparity scale all exceed them);
- the real ``vggsound.csv`` excerpt: read in full, its test rows agree with the official test list, and the one label
  outside the 309 shipped classes is named, not silently mapped;
- AudioSet segment CSVs: the re-saved and the truncated real copies (the originals and the spreadsheet-damaged copy
  are in test_av_manifests.py).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

REALDATA = Path(__file__).resolve().parents[3] / "shared" / "realdata"
needs_realdata = pytest.mark.skipif(not REALDATA.is_dir(), reason="needs ../shared/realdata (real files)")


# ---- HHA on real depth ---------------------------------------------------------------------------------------------
# Measured on 0.png with 0_raw.png's zeros as the missing mask (mean |ours − getHHA| per channel, 0..255 units):
# disparity 0.00, height 3.50, angle 5.80; medians 0, 4, 2. Without the mask the angle's mean is 22.9; against the
# MATLAB reference (gravity estimated, which ours takes along the camera axis) 0.00, 3.19, 4.48 without the mask.
HHA_TOLERANCE = {"disparity": (0.5, 0.5), "height": (4.5, 5.0), "angle": (7.0, 3.0)}  # (mean, median) |difference|


def _png(name: str) -> np.ndarray:
    cv2 = pytest.importorskip("cv2")
    image = cv2.imread(str(REALDATA / "rgbd" / "depth2hha" / name), cv2.IMREAD_UNCHANGED)
    assert image is not None, name
    return image


@needs_realdata
def test_hha_of_real_depth_is_within_the_stated_tolerances_of_the_reference():
    from mke_experiments.data.hha import encode_hha

    depth_m = _png("0.png") / 10000.0  # uint16, value / 10000 = metres (PROVENANCE.md)
    missing = _png("0_raw.png") == 0  # 23.9 % of the raw frame
    reference = _png("hha.png")[:, :, ::-1].transpose(2, 0, 1).astype(float)  # BGR as read → (3, H, W) RGB = HHA
    ours = encode_hha(depth_m, missing=missing).astype(float)
    assert ours.shape == reference.shape == (3, 480, 640)
    for channel, (name, (mean_tol, median_tol)) in enumerate(HHA_TOLERANCE.items()):
        difference = np.abs(ours[channel] - reference[channel])
        assert difference.mean() <= mean_tol, (name, difference.mean())
        assert np.median(difference) <= median_tol, (name, np.median(difference))


@needs_realdata
def test_hha_without_the_missing_mask_is_outside_the_tolerance():
    """The tolerance can tell: dropping the raw frame's missing-depth mask (in-filled depth enters the normals)
    breaks the angle channel's mean."""
    from mke_experiments.data.hha import encode_hha

    reference = _png("hha.png")[:, :, ::-1].transpose(2, 0, 1).astype(float)
    ours = encode_hha(_png("0.png") / 10000.0).astype(float)
    assert np.abs(ours[2] - reference[2]).mean() > HHA_TOLERANCE["angle"][0]


# ---- VGGSound ------------------------------------------------------------------------------------------------------
@needs_realdata
def test_real_vggsound_csv_excerpt_reads_in_full_and_agrees_with_the_official_test_list():
    from mke_experiments.data.av_manifests import clip_name, mapping, read_vggsound_csv

    rows = read_vggsound_csv(REALDATA / "vggsound" / "vggsound_excerpt.csv")  # CRLF line endings
    assert len(rows) == 554  # 401 first + 153 last rows of the real file
    assert rows[0].ytid == "---g-f_I2yQ" and rows[0].start == 1 and rows[0].label == "people marching"
    test = dict(line.strip().split(",", 1) for line in  # labels may hold commas, names never
                (REALDATA / "vggsound" / "hche11_data" / "test.csv").read_text().splitlines() if line.strip())
    ours = {f"{clip_name(r.ytid, r.start)}.mp4": r.label for r in rows if r.split == "test"}
    assert len(ours) == 53 and all(test.get(name, "").strip('"') == label for name, label in ours.items())
    outside = {r.label for r in rows} - set(mapping()["vggsound_classes"])
    assert outside == {"extending ladders"}  # the real file's one label beyond the 309 shipped


@needs_realdata
def test_a_label_outside_the_309_is_named_with_close_matches():
    from mke_experiments.data.av_manifests import vggsound_to_audioset
    from mke_theory.core.errors import MKEError

    with pytest.raises(MKEError, match="extending ladders"):
        vggsound_to_audioset("extending ladders")


# ---- AudioSet segment CSVs: the real-world copies --------------------------------------------------------------------
@needs_realdata
def test_real_resaved_segments_copy_reads_every_row_without_a_warning():
    """aoifemcdonagh's copy: one '#' line, ',' without a space, integer times, single MIDs unquoted."""
    from mke_experiments.data.av_manifests import read_audioset_segments

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rows = read_audioset_segments(REALDATA / "audioset" / "variants" / "aoifemcdonagh_eval_segments.csv")
    assert len(rows) == 20371  # the original eval list's count


@needs_realdata
def test_real_truncated_segments_download_is_one_sentence_with_the_counts():
    from mke_experiments.data.av_manifests import ManifestError, read_audioset_segments

    path = REALDATA / "audioset" / "variants" / "homeguardian_unbalanced_train_segments_head.csv"
    with pytest.raises(ManifestError, match=r":970: the file ends in the middle of a row, after 966 of the 2041789 "
                                            r"segments its header declares: an interrupted download"):
        read_audioset_segments(path)


def test_a_short_last_line_with_a_newline_is_still_a_field_count_error(tmp_path):
    """Only a last line cut before its newline is called an interrupted download; a short row elsewhere is the
    format error it is."""
    from mke_experiments.data.av_manifests import ManifestError, read_audioset_segments
    from mke_experiments.testing.av_csv import segments_text

    text = segments_text().rstrip("\n").rsplit("\n", 1)[0] + "\n-abcdefghij, 1.000, 11.000\n"
    (tmp_path / "a.csv").write_text(text)
    with pytest.raises(ManifestError, match="expected 4 fields"):
        read_audioset_segments(tmp_path / "a.csv")
    (tmp_path / "b.csv").write_text(text.rstrip("\n"))
    with pytest.raises(ManifestError, match="interrupted download"):
        read_audioset_segments(tmp_path / "b.csv")
