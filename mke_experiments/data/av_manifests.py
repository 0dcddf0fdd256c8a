"""VGGSound and AudioSet manifests: the csv readers and the shipped VGGSound → AudioSet class map.

On disk (data-formats reference, section A3) the three files look like this::

    vggsound.csv                  no header, 4 columns: YouTube ID, start seconds, label, split
        ---g-f_I2yQ,1,people marching,test
        --0PQM4-hqg,30,"male speech, man speaking",train      labels with a comma are double-quoted

    *_segments.csv (AudioSet)     three '#' lines, then ', '-separated rows, the MIDs always quoted
        # Segments csv created Sun Mar  5 10:54:31 2017
        # num_ytids=22160, num_segs=22160, num_unique_labels=527, num_positive_labels=52882
        # YTID, start_seconds, end_seconds, positive_labels
        --PJHxphWEs, 30.000, 40.000, "/m/09x0r,/t/dd00088"

    class_labels_indices.csv      a header, 527 rows, display_name always quoted
        index,mid,display_name
        1,/m/05zppz,"Male speech, man speaking"

All three are read with the standard library's ``csv`` module, never with ``pandas.read_csv`` defaults
(which would turn the first VGGSound clip into a header). YouTube IDs are 11 characters of
``[A-Za-z0-9_-]`` and may start with ``-``. A malformed line raises ``ManifestError`` naming the file,
the line number and the fix.

``vggsound_audioset_map.json`` ships with the library: the 527 AudioSet classes, the 309 VGGSound labels, a
conservative label → MID mapping (exact, normalised or a reviewed manual table) and the fixed class subsets
of the ``vggsound`` protocol; ``docs/vggsound_audioset_mapping.md`` says how it was built and from what.
"""

from __future__ import annotations

import csv
import difflib
import functools
import json
import math
import os
import re
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import NamedTuple

from mke_theory.core.errors import MKEError

MAP_NAME = "vggsound_audioset_map.json"
MAP_FORMAT = "mke-vggsound-audioset-map"
VGGSOUND_SPLITS = ("train", "test")
VGGSOUND_COLUMNS = ("YouTube ID", "start seconds", "label", "split")
CLASS_LABELS_HEADER = ("index", "mid", "display_name")
N_AUDIOSET_CLASSES = 527
N_VGGSOUND_CLASSES = 309

_YTID_RE = re.compile(r"^[A-Za-z0-9_-]{11}$")
_MID_RE = re.compile(r"^/[mtg]/[A-Za-z0-9_]+$")  # /m/09x0r, /t/dd00088, /g/122z_qxw

_VGG_FIX = ("vggsound.csv rows are 'YouTube ID,start seconds,label,split' with no header, "
            "labels that contain a comma double-quoted")
_SEGMENTS_FIX = ("AudioSet segment rows are 'YTID, start_seconds, end_seconds, \"mid,mid,...\"' "
                 "after three '#' comment lines")
_CLASSES_FIX = "class_labels_indices.csv rows are 'index,mid,\"display_name\"' after the header index,mid,display_name"


class ManifestError(MKEError):
    """A VGGSound or AudioSet csv the user supplied is not what the reader expects (file, line and fix)."""


class VggRow(NamedTuple):
    """One line of ``vggsound.csv``: the 10 s clip [start, start + 10) of a YouTube video."""

    ytid: str  # 11 characters of [A-Za-z0-9_-], may start with '-'
    start: int  # seconds
    label: str  # one of the 309 VGGSound labels, e.g. "male speech, man speaking"
    split: str  # "train" or "test"


class SegmentRow(NamedTuple):
    """One line of an AudioSet segments csv."""

    ytid: str
    start: float  # seconds
    end: float  # seconds, > start
    mids: tuple[str, ...]  # positive labels, e.g. ("/m/09x0r", "/t/dd00088")


class AudioSetClass(NamedTuple):
    """One row of ``class_labels_indices.csv``."""

    index: int  # 0..526, the column of the 527-way output
    mid: str  # Freebase/Google MID, e.g. "/m/09x0r"
    name: str  # display_name, e.g. "Male speech, man speaking"


# ---- small helpers --------------------------------------------------------------------------------
def clip_name(ytid: str, start: int) -> str:
    """The official repository's clip stem ``{ytid}_{start:06d}``, e.g. ``glLQrEijrKg_000300``."""
    return f"{ytid}_{int(start):06d}"


def _check_file(path: Path, what: str) -> None:
    if not path.is_file():
        raise ManifestError(f"{path}: no such file; pass the path of {what}.")


class _Utf8Text:
    """``open(path)`` as UTF-8 text whose decoding errors become a ManifestError naming the file."""

    def __init__(self, path: Path):
        self.path, self.handle = path, path.open(encoding="utf-8-sig", newline="")

    def __enter__(self):
        return self.handle

    def __exit__(self, kind, exc, tb):
        self.handle.close()
        if kind is not None and issubclass(kind, UnicodeDecodeError):
            raise ManifestError(f"{self.path}: is not UTF-8 text (byte {exc.start} cannot be decoded); "
                                "save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8).") from None
        return False


def _utf8(path: Path) -> _Utf8Text:
    return _Utf8Text(path)


def _rows(path: Path, handle, **fmt) -> Iterator[tuple[int, list[str]]]:
    """(first line number, fields) for each non-blank csv record; a quote left open or a csv error is reported."""
    reader = csv.reader(handle, **fmt)
    last = 0
    while True:
        first = last + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ManifestError(f"{path}:{reader.line_num}: not valid csv ({exc}); "
                                "fix or re-download the file.") from exc
        last = reader.line_num
        if last > first and any("\n" in field or "\r" in field for field in row):
            raise ManifestError(f"{path}:{first}: a double quote opened on this line is never closed; "
                                "close the quoted field on the same line.")
        if row and any(field.strip() for field in row):
            yield first, row


def _ytid(path: Path, line: int, value: str) -> str:
    if not _YTID_RE.match(value):
        raise ManifestError(f"{path}:{line}: {value!r} is not a YouTube ID (11 characters of A-Z, a-z, 0-9, "
                            "'_' and '-'); fix the ID, keeping a leading '-', which is valid.")
    return value


def _mid(path: Path, line: int, value: str, fix: str) -> str:
    if not _MID_RE.match(value):
        raise ManifestError(f"{path}:{line}: {value!r} is not an AudioSet MID (/m/..., /t/... or /g/...); {fix}.")
    return value


# ---- readers --------------------------------------------------------------------------------------
def read_vggsound_csv(path: str | os.PathLike) -> list[VggRow]:
    """Read ``vggsound.csv`` (no header; 4 columns; labels with commas double-quoted).

    Parameters
    ----------
    path : the csv from the VGGSound page or hche11/VGGSound.

    Returns
    -------
    list[VggRow]
        in file order; ``start`` is an int, ``split`` is "train" or "test".

    Raises
    ------
    ManifestError
        ``{path}:{line}: ...`` for a missing file, a wrong column count, a non-integer start, an unknown split
        or an invalid YouTube ID; a header line is reported as such (the file has none).
    """
    path = Path(path)
    _check_file(path, "vggsound.csv")
    out: list[VggRow] = []
    seen: dict[str, tuple[int, str, str]] = {}  # clip name -> (line, label, split) of its first row
    with _utf8(path) as handle:
        for line, row in _rows(path, handle):
            if len(row) != 4:
                raise ManifestError(f"{path}:{line}: expected 4 columns ({', '.join(VGGSOUND_COLUMNS)}), found "
                                    f"{len(row)}; {_VGG_FIX}.")
            ytid, start, label, split = row
            try:
                start_s = int(start)
            except ValueError:
                if line == 1 and not _YTID_RE.match(ytid):
                    raise ManifestError(f"{path}:1: {row!r} looks like a header, but vggsound.csv has none; "
                                        "delete that line.") from None
                raise ManifestError(f"{path}:{line}: start {start!r} is not a whole number of seconds; "
                                    f"{_VGG_FIX}.") from None
            if start_s < 0:
                raise ManifestError(f"{path}:{line}: start {start_s} is negative; {_VGG_FIX}.")
            if split not in VGGSOUND_SPLITS:
                raise ManifestError(f"{path}:{line}: split {split!r} is neither 'train' nor 'test'; "
                                    f"{_VGG_FIX}.")
            if not label.strip():
                raise ManifestError(f"{path}:{line}: the label is empty; {_VGG_FIX}.")
            name = clip_name(_ytid(path, line, ytid), start_s)
            if name in seen:
                first, first_label, first_split = seen[name]
                if (first_label, first_split) != (label, split):
                    raise ManifestError(f"{path}:{line}: clip {ytid} at {start_s} s is listed again as "
                                        f"{label!r}/{split}, but line {first} lists it as {first_label!r}/"
                                        f"{first_split}; keep one of the two lines.")
                continue  # an exact repeat of an earlier line adds nothing
            seen[name] = (line, label, split)
            out.append(VggRow(ytid, start_s, label, split))
    if not out:
        raise ManifestError(f"{path}: holds no rows; pass the full vggsound.csv.")
    return out


def read_audioset_segments(path: str | os.PathLike) -> list[SegmentRow]:
    """Read an AudioSet ``*_segments.csv`` (balanced_train, eval or unbalanced_train).

    Lines starting with ``#`` are skipped; fields are separated by comma + space and the positive labels are one
    double-quoted, comma-separated list of MIDs. A copy re-saved by a spreadsheet turns the YouTube IDs that start
    with ``-`` into the formula error ``#NAME?``, which would read as comments: such a file is refused, naming the
    count. Where the header gives ``num_segs=N``, a file of another number of rows is a ``UserWarning`` (a
    download cut at a line end, or a file filtered on purpose). The column line without its ``#`` is skipped.

    Parameters
    ----------
    path : the segments csv from the AudioSet download page.

    Returns
    -------
    list[SegmentRow]
        in file order.

    Raises
    ------
    ManifestError
        ``{path}:{line}: ...`` for a missing file, a wrong field count, non-numeric or inverted times, an
        invalid YouTube ID or a label that is not a MID.
    """
    path = Path(path)
    _check_file(path, "an AudioSet segments csv")
    out: list[SegmentRow] = []
    declared, damaged = None, []  # the header's num_segs; lines of IDs a spreadsheet turned into #NAME?
    with _utf8(path) as handle:
        for number, text in enumerate(handle, start=1):  # one record per physical line: the numbering is exact
            if text.startswith(SPREADSHEET_ERRORS):
                damaged.append(number)
                continue
            if text.startswith("#") or not text.strip():
                found = _NUM_SEGS_RE.search(text) if declared is None and text.startswith("#") else None
                declared = int(found.group(1)) if found else declared
                continue
            try:
                row = [field.strip() for field in next(csv.reader([text], skipinitialspace=True))]
            except csv.Error as exc:
                raise ManifestError(f"{path}:{number}: not valid csv ({exc}); fix or re-download the file.") from exc
            if row[:1] == ["YTID"] and not out:  # the column line, its "# " lost (a real copy has it so)
                continue
            if len(row) != 4:
                if not text.endswith("\n") and declared is not None and len(out) < declared:  # the last line, cut
                    raise ManifestError(f"{path}:{number}: the file ends in the middle of a row, after {len(out)} of "
                                        f"the {declared} segments its header declares: an interrupted download; "
                                        "download the csv again.")
                raise ManifestError(f"{path}:{number}: expected 4 fields (YTID, start_seconds, end_seconds, "
                                    f"positive_labels), found {len(row)}; {_SEGMENTS_FIX}.")
            ytid, start, end, labels = row
            try:
                start_s, end_s = float(start), float(end)
            except ValueError:
                raise ManifestError(f"{path}:{number}: times {start!r}, {end!r} are not numbers of seconds; "
                                    f"{_SEGMENTS_FIX}.") from None
            if not (math.isfinite(start_s) and math.isfinite(end_s) and 0 <= start_s < end_s):
                raise ManifestError(f"{path}:{number}: the segment [{start}, {end}) is empty or negative; "
                                    "end_seconds must be greater than start_seconds >= 0.")
            mids = tuple(_mid(path, number, mid.strip(), _SEGMENTS_FIX) for mid in labels.split(","))
            out.append(SegmentRow(_ytid(path, number, ytid), start_s, end_s, mids))
    _check_segment_count(path, len(out), declared, damaged)
    return out


SPREADSHEET_ERRORS = ("#NAME?", "#N/A", "#VALUE!", "#REF!")  # what Excel and LibreOffice put in a cell of a formula
# they cannot compute: an ID such as -0Uh0hnpxMc read as the formula "-0Uh0hnpxMc"
_NUM_SEGS_RE = re.compile(r"\bnum_segs=(\d+)")


def _check_segment_count(path: Path, rows: int, declared: int | None, damaged: list[int]) -> None:
    """Refuse a segments csv with spreadsheet-damaged IDs (``damaged``: their line numbers) or no rows; warn when
    the rows read differ from the header's ``num_segs`` (``declared``, None when the header gives none)."""
    if damaged:
        of = f" of the {declared} its header declares" if declared is not None else ""
        raise ManifestError(f"{path}: {len(damaged)} row(s){of} start with a spreadsheet error such as #NAME? "
                            f"(first on line {damaged[0]}): a spreadsheet re-saved the file and turned the YouTube "
                            "IDs that begin with '-' into formula errors, so those clips are lost; download the "
                            "csv again from AudioSet and do not open it in a spreadsheet.")
    if not rows:
        raise ManifestError(f"{path}: holds no segment rows; pass a full AudioSet segments csv.")
    if declared is not None and rows != declared:
        import warnings

        why = "a download cut short or a file filtered on purpose" if rows < declared else "rows were added"
        warnings.warn(f"{path}: holds {rows} segment rows, but its header declares num_segs={declared} ({why}): "
                      "the data set is not AudioSet's full list", stacklevel=3)


def read_class_labels(path: str | os.PathLike) -> list[AudioSetClass]:
    """Read AudioSet's ``class_labels_indices.csv`` (header ``index,mid,display_name``).

    Parameters
    ----------
    path : the csv (527 rows in the official release; any count is accepted, indices must run 0, 1, 2, …).

    Returns
    -------
    list[AudioSetClass]
        in index order.

    Raises
    ------
    ManifestError
        ``{path}:{line}: ...`` for a missing file or header, a wrong field count, an index out of order, an
        invalid or repeated MID, or an empty name.
    """
    path = Path(path)
    _check_file(path, "class_labels_indices.csv")
    out: list[AudioSetClass] = []
    seen: dict[str, int] = {}
    with _utf8(path) as handle:
        rows = _rows(path, handle)
        first = next(rows, None)
        if first is None or tuple(f.strip() for f in first[1]) != CLASS_LABELS_HEADER:
            line = 1 if first is None else first[0]
            raise ManifestError(f"{path}:{line}: expected the header line 'index,mid,display_name'; "
                                "use the class_labels_indices.csv of the AudioSet release, header included.")
        for line, row in rows:
            if len(row) != 3:
                raise ManifestError(f"{path}:{line}: expected 3 fields (index, mid, display_name), found "
                                    f"{len(row)}; {_CLASSES_FIX}, the name double-quoted.")
            index, mid, name = (field.strip() for field in row)
            if index != str(len(out)):
                raise ManifestError(f"{path}:{line}: index {index!r} is out of order, expected {len(out)}; "
                                    f"{_CLASSES_FIX}, the indices counting up from 0.")
            _mid(path, line, mid, _CLASSES_FIX)
            if mid in seen:
                raise ManifestError(f"{path}:{line}: MID {mid} repeats line {seen[mid]}; each class appears once.")
            if not name:
                raise ManifestError(f"{path}:{line}: display_name is empty; {_CLASSES_FIX}.")
            seen[mid] = line
            out.append(AudioSetClass(len(out), mid, name))
    if not out:
        raise ManifestError(f"{path}: holds a header but no classes; pass the full class_labels_indices.csv.")
    return out


# ---- the shipped map ------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def mapping() -> dict:
    """The shipped ``vggsound_audioset_map.json``; cached, do not modify the result.

    Keys: ``audioset_classes`` (527 ``{index, mid, name}``), ``vggsound_classes`` (309 labels, sorted),
    ``mapping`` (VGGSound label → list of AudioSet MIDs, only for labels that have one), ``match`` (label →
    "exact", "normalised" or "manual"), ``manual`` (the reviewed table: label → ``{mids, names, reason}``),
    ``unmatched_vggsound``, ``counts``, ``subsets`` (name → ``{size, labels, description}``), ``method`` and
    ``sources`` (repositories, commits, licences).
    """
    text = resources.files("mke_experiments.data").joinpath(MAP_NAME).read_text(encoding="utf-8")
    data = json.loads(text)
    if (data.get("format") != MAP_FORMAT or len(data["audioset_classes"]) != N_AUDIOSET_CLASSES
            or len(data["vggsound_classes"]) != N_VGGSOUND_CLASSES):
        raise ManifestError(f"the shipped {MAP_NAME} of mke_experiments.data is damaged; reinstall the mke package.")
    return data


def audioset_classes() -> list[AudioSetClass]:
    """The 527 AudioSet classes of the shipped map, in index order."""
    return [AudioSetClass(c["index"], c["mid"], c["name"]) for c in mapping()["audioset_classes"]]


def vggsound_to_audioset(label: str) -> tuple[str, ...]:
    """AudioSet MIDs mapped to a VGGSound label; ``()`` for one of the ``unmatched_vggsound`` labels.

    Raises
    ------
    ManifestError
        when ``label`` is not one of the 309 VGGSound labels (close matches are suggested).
    """
    data = mapping()
    if label not in data["mapping"]:
        if label not in data["vggsound_classes"]:
            close = difflib.get_close_matches(label, data["vggsound_classes"], n=3)
            hint = f"did you mean {', '.join(map(repr, close))}?" if close else "see subset('vggsound')."
            raise ManifestError(f"{label!r} is not a VGGSound label; {hint}")
        return ()
    return tuple(data["mapping"][label])


def subset(name: str) -> list[str]:
    """The sorted VGGSound labels of a documented class subset ("vggsound", "vggsound-mapped", ...).

    Raises
    ------
    ManifestError
        for an unknown name, listing the known ones.
    """
    subsets = mapping()["subsets"]
    if name not in subsets:
        raise ManifestError(f"unknown VGGSound class subset {name!r}; choose one of {', '.join(sorted(subsets))}.")
    return list(subsets[name]["labels"])
