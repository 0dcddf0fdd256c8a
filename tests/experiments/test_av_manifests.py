"""VGGSound / AudioSet csv readers on format-exact tiny files, and the shipped VGGSound → AudioSet map."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mke_experiments.data.av_manifests import (
    AudioSetClass,
    ManifestError,
    SegmentRow,
    VggRow,
    audioset_classes,
    clip_name,
    mapping,
    read_audioset_segments,
    read_class_labels,
    read_vggsound_csv,
    subset,
    vggsound_to_audioset,
)
from mke_experiments.testing.av_csv import (
    CLASS_ROWS,
    SEGMENT_HEADER,
    SEGMENT_ROWS,
    VGG_ROWS,
    class_labels_text,
    segments_text,
    vggsound_text,
    write_audioset_segments,
    write_class_labels,
    write_vggsound_csv,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "vggsound_audioset_mapping.md"


def _with_line(text: str, at: int, line: str) -> str:
    """``text`` with ``line`` inserted so that it becomes physical line ``at`` (1-based)."""
    lines = text.splitlines(keepends=True)
    lines.insert(at - 1, line + "\n")
    return "".join(lines)


def _raises_at(read, path: Path, line: int, *fragments: str) -> str:
    with pytest.raises(ManifestError) as info:
        read(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert path.name in message
    for fragment in fragments:
        assert fragment in message, message
    return message


# ---- vggsound.csv ---------------------------------------------------------------------------------
def test_vggsound_fixture_has_the_real_quoting(tmp_path):
    text = write_vggsound_csv(tmp_path / "vggsound.csv").read_text()
    assert text.splitlines()[0] == "---g-f_I2yQ,1,people marching,test"  # no header: the first clip
    assert '"male speech, man speaking"' in text and '"bee, wasp, etc. buzzing"' in text
    assert ",police car (siren)," in text and ",horse clip-clop," in text  # unquoted: no comma inside


def test_vggsound_parses_every_trap(tmp_path):
    rows = read_vggsound_csv(write_vggsound_csv(tmp_path / "vggsound.csv"))
    assert rows == [VggRow(*row) for row in VGG_ROWS]
    assert rows[0] == VggRow("---g-f_I2yQ", 1, "people marching", "test")  # '--' ID kept, first row is data
    assert rows[2].ytid == "-0BKyt8iZ1I" and rows[2].label == "male speech, man speaking"
    assert rows[3].label == "police car (siren)" and rows[4].label == "bee, wasp, etc. buzzing"
    assert {row.start for row in rows} >= {0, 30} and all(isinstance(row.start, int) for row in rows)
    assert {row.split for row in rows} == {"train", "test"}


def test_vggsound_first_row_is_data_not_a_header(tmp_path):
    """pandas.read_csv with default arguments makes the first clip the header; the reader keeps every line."""
    path = write_vggsound_csv(tmp_path / "vggsound.csv")
    assert len(read_vggsound_csv(path)) == len(path.read_text().splitlines()) == len(VGG_ROWS)


def test_vggsound_crlf_and_trailing_blank_line(tmp_path):
    path = tmp_path / "vggsound.csv"
    path.write_bytes((vggsound_text() + "\n").replace("\n", "\r\n").encode())
    assert read_vggsound_csv(path) == [VggRow(*row) for row in VGG_ROWS]


def test_clip_name_is_the_official_stem():
    assert clip_name("glLQrEijrKg", 300) == "glLQrEijrKg_000300"
    assert clip_name("---g-f_I2yQ", 1) == "---g-f_I2yQ_000001"


@pytest.mark.parametrize("bad, fragments", [
    ("abcdefghijk,0,male speech, man speaking,train", ("expected 4 columns", "found 5", "double-quoted")),
    ("abcdefghijk,0,dog barking", ("expected 4 columns", "found 3")),
    ("abcdefghijk,1.5,dog barking,train", ("'1.5'", "whole number")),
    ("abcdefghijk,-10,dog barking,train", ("negative",)),
    ("abcdefghijk,0,dog barking,val", ("'val'", "'train' nor 'test'")),
    ("abc defghij,0,dog barking,train", ("not a YouTube ID",)),
    ("abcdefghij,0,dog barking,train", ("not a YouTube ID",)),
    ("abcdefghijk,0,,train", ("label is empty",)),
])
def test_vggsound_malformed_line_names_file_and_line(tmp_path, bad, fragments):
    path = tmp_path / "my_vggsound.csv"
    path.write_text(_with_line(vggsound_text(), 4, bad))
    _raises_at(read_vggsound_csv, path, 4, *fragments)


@pytest.mark.parametrize("change", ["split", "label"])
def test_vggsound_clip_listed_twice_with_conflicting_rows_names_both_lines(tmp_path, change):
    ytid, start, label, split = VGG_ROWS[0]
    other = (ytid, start, "dog barking" if change == "label" else label,
             ("test" if split == "train" else "train") if change == "split" else split)
    path = tmp_path / "vggsound.csv"
    path.write_text(_with_line(vggsound_text(), 4, ",".join(map(str, other))))
    message = _raises_at(read_vggsound_csv, path, 4, "line 1", ytid, "keep one of the two lines")
    assert "line 1 lists it" in message


def test_vggsound_exact_repeat_is_read_once(tmp_path):
    ytid, start, label, split = VGG_ROWS[-1]
    path = tmp_path / "vggsound.csv"
    quoted = f'"{label}"' if "," in label else label
    path.write_text(vggsound_text() + f"{ytid},{start},{quoted},{split}\n")
    assert read_vggsound_csv(path) == [VggRow(*row) for row in VGG_ROWS]


@pytest.mark.parametrize("read", [read_vggsound_csv, read_audioset_segments, read_class_labels])
def test_a_latin1_csv_names_the_file_and_asks_for_utf8(tmp_path, read):
    path = tmp_path / "latin1.csv"
    path.write_bytes("abcdefghijk,0,caf\xe9 noise,train\n".encode("latin-1"))
    with pytest.raises(ManifestError, match="UTF-8") as info:
        read(path)
    assert str(path) in str(info.value)


def test_vggsound_header_line_is_reported_as_such(tmp_path):
    path = tmp_path / "vggsound.csv"
    path.write_text("YouTube ID,start seconds,label,train/test split\n" + vggsound_text())
    _raises_at(read_vggsound_csv, path, 1, "looks like a header", "delete that line")


def test_vggsound_unclosed_quote_reports_where_it_opened(tmp_path):
    path = tmp_path / "vggsound.csv"
    path.write_text(_with_line(vggsound_text(), 3, 'abcdefghijk,0,"male speech, man speaking,train'))
    _raises_at(read_vggsound_csv, path, 3, "never closed")


def test_missing_or_empty_files_are_manifest_errors(tmp_path):
    for read in (read_vggsound_csv, read_audioset_segments, read_class_labels):
        with pytest.raises(ManifestError, match="no such file"):
            read(tmp_path / "absent.csv")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ManifestError, match="no rows"):
        read_vggsound_csv(empty)
    with pytest.raises(ManifestError, match="no segment rows"):
        read_audioset_segments(empty)
    assert issubclass(ManifestError, ValueError)


# ---- AudioSet segments ----------------------------------------------------------------------------
def test_segments_parse_comment_lines_spaces_and_quoted_mids(tmp_path):
    path = write_audioset_segments(tmp_path / "eval_segments.csv")
    text = path.read_text()
    assert text.splitlines()[:3] == list(SEGMENT_HEADER)
    assert '--PJHxphWEs, 30.000, 40.000, "/m/09x0r,/t/dd00088"' in text
    rows = read_audioset_segments(path)
    assert rows == [SegmentRow(*row) for row in SEGMENT_ROWS]
    assert rows[0].mids == ("/m/09x0r", "/t/dd00088") and rows[1].mids == ("/m/012xff",)
    assert rows[3].mids == ("/g/122z_qxw",) and rows[3].start == 12.5


@pytest.mark.parametrize("bad, fragments", [
    ('abcdefghijk, 0.000, 10.000', ("expected 4 fields", "found 3")),
    ('abcdefghijk, 0.000, 10.000, /m/09x0r, /m/04rlf', ("expected 4 fields", "found 5")),
    ('abcdefghijk, zero, 10.000, "/m/09x0r"', ("not numbers",)),
    ('abcdefghijk, 10.000, 10.000, "/m/09x0r"', ("greater than",)),
    ('abcdefghijk, 0.000, 10.000, "09x0r"', ("'09x0r'", "not an AudioSet MID")),
    ('abcdefghijk, 0.000, 10.000, "/m/09x0r,Speech"', ("'Speech'",)),
    ('abcdefghijk, 0.000, 10.000, ""', ("''", "not an AudioSet MID")),
    ('abc, 0.000, 10.000, "/m/09x0r"', ("not a YouTube ID",)),
])
def test_segments_malformed_line_names_file_and_line(tmp_path, bad, fragments):
    path = tmp_path / "balanced_train_segments.csv"
    path.write_text(_with_line(segments_text(), 6, bad))  # after the 3 '#' lines and 2 rows
    _raises_at(read_audioset_segments, path, 6, *fragments)


# ---- AudioSet segments damaged by a spreadsheet (issue 23, case 12) --------------------------------
REALDATA = Path(__file__).resolve().parents[3] / "shared" / "realdata" / "audioset"  # never copied into the repo


def _spreadsheet_copy(path: Path, damaged: int) -> Path:
    """The fixture as a spreadsheet re-saves it: the first ``damaged`` IDs (which start with '-') become #NAME?."""
    lines = segments_text().splitlines()
    for i in range(3, 3 + damaged):
        lines[i] = "#NAME?" + lines[i][len("--PJHxphWEs"):]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_segments_damaged_by_a_spreadsheet_are_refused_with_the_count(tmp_path):
    # bug caught: the #NAME? rows were read as '#' comment lines and dropped without a word
    path = _spreadsheet_copy(tmp_path / "balanced_train_segments.csv", damaged=2)
    with pytest.raises(ManifestError) as info:
        read_audioset_segments(path)
    message = str(info.value)
    assert message.startswith(f"{path}: 2 row(s) of the 4 its header declares start with a spreadsheet error "
                              "such as #NAME? (first on line 4)"), message
    assert "YouTube IDs that begin with '-'" in message and "download the csv again" in message


def test_segments_fewer_than_the_header_declares_are_counted_in_a_warning(tmp_path):
    path = tmp_path / "eval_segments.csv"
    path.write_text(segments_text(SEGMENT_ROWS[:3], declared=5))
    with pytest.warns(UserWarning, match=r"holds 3 segment rows, but its header declares num_segs=5 \(a download "):
        assert len(read_audioset_segments(path)) == 3


def test_segments_column_line_without_its_hash_is_skipped(tmp_path):
    path = tmp_path / "eval_segments.csv"
    path.write_text(segments_text().replace("# YTID,", "YTID,"))
    assert read_audioset_segments(path) == [SegmentRow(*row) for row in SEGMENT_ROWS]


@pytest.mark.skipif(not REALDATA.is_dir(), reason="needs ../shared/realdata (real AudioSet csvs)")
def test_real_segment_csvs_read_in_full_or_are_refused_naming_the_damage(recwarn):
    assert len(read_audioset_segments(REALDATA / "balanced_train_segments.csv")) == 22160
    assert len(read_audioset_segments(REALDATA / "eval_segments.csv")) == 20371
    assert len(read_audioset_segments(REALDATA / "variants" / "bci4cpl_eval_segments.csv")) == 20371  # no '# '
    assert not [w for w in recwarn if "segment rows" in str(w.message)]  # counts as declared: no warning
    damaged = REALDATA / "variants" / "swagshaw_balanced_train_segments.csv"
    with pytest.raises(ManifestError, match=r"371 row\(s\) of the 22160 its header declares start with a "
                                            r"spreadsheet error such as #NAME\? \(first on line 3\)"):
        read_audioset_segments(damaged)


# ---- class_labels_indices.csv ---------------------------------------------------------------------
def test_class_labels_parse_always_quoted_names(tmp_path):
    path = write_class_labels(tmp_path / "class_labels_indices.csv")
    assert '1,/m/05zppz,"Male speech, man speaking"' in path.read_text()
    assert '0,/m/09x0r,"Speech"' in path.read_text()
    assert read_class_labels(path) == [AudioSetClass(*row) for row in CLASS_ROWS]


def test_class_labels_need_the_header(tmp_path):
    path = tmp_path / "class_labels_indices.csv"
    path.write_text(class_labels_text().split("\n", 1)[1])
    _raises_at(read_class_labels, path, 1, "index,mid,display_name")


@pytest.mark.parametrize("bad, fragments", [
    ('3,/m/04qvtq', ("expected 3 fields", "found 2")),
    ('7,/m/0abcd,"Seven"', ("'7'", "out of order", "expected 3")),
    ('3,/x/1,"Western Instrument"', ("'/x/1'", "not an AudioSet MID")),
    ('3,/m/05zppz,"Male speech, man speaking"', ("repeats line 3",)),
    ('3,/m/0abcd,""', ("display_name is empty",)),
    ('3,/m/0abcd,Police car, siren', ("expected 3 fields", "found 4", "double-quoted")),
])
def test_class_labels_malformed_line_names_file_and_line(tmp_path, bad, fragments):
    path = tmp_path / "class_labels_indices.csv"
    rows = CLASS_ROWS[:3]  # lines 2..4; the bad row becomes line 5 with index 3
    path.write_text(class_labels_text(rows) + bad + "\n")
    _raises_at(read_class_labels, path, 5, *fragments)


def test_class_labels_reader_reads_the_shipped_527(tmp_path):
    path = write_class_labels(tmp_path / "class_labels_indices.csv",
                              [(c.index, c.mid, c.name) for c in audioset_classes()])
    assert read_class_labels(path) == audioset_classes()


# ---- the shipped map ------------------------------------------------------------------------------
def test_shipped_class_lists():
    data = mapping()
    classes = audioset_classes()
    assert len(classes) == 527 and [c.index for c in classes] == list(range(527))
    assert classes[0] == AudioSetClass(0, "/m/09x0r", "Speech")
    assert classes[1] == AudioSetClass(1, "/m/05zppz", "Male speech, man speaking")
    assert classes[526] == AudioSetClass(526, "/m/07hvw1", "Field recording")
    assert len({c.mid for c in classes}) == len({c.name for c in classes}) == 527
    labels = data["vggsound_classes"]
    assert len(labels) == len(set(labels)) == 309 and labels == sorted(labels)
    assert {"people marching", "waterfall burbling", "male speech, man speaking", "police car (siren)"} <= set(labels)
    for source in data["sources"].values():
        assert re.fullmatch(r"[0-9a-f]{40}", source["commit"]) and "CC BY 4.0" in source["licence"]


def test_mapping_is_internally_consistent():
    data = mapping()
    labels, mapped, unmatched = set(data["vggsound_classes"]), data["mapping"], data["unmatched_vggsound"]
    mids = {c.mid for c in audioset_classes()}
    assert all(m and set(m) <= mids and len(m) == len(set(m)) for m in mapped.values())
    assert set(mapped) | set(unmatched) == labels and not set(mapped) & set(unmatched)
    assert list(mapped) == sorted(mapped) and unmatched == sorted(unmatched)
    assert set(data["match"]) == set(mapped)
    counts = data["counts"]
    for kind in ("exact", "normalised", "manual"):
        assert counts[kind] == sum(v == kind for v in data["match"].values())
    assert counts["unmatched"] == len(unmatched) and sum(counts.values()) == 309
    name_of = {c.mid: c.name for c in audioset_classes()}
    for label, entry in data["manual"].items():
        assert data["match"][label] == "manual" and mapped[label] == entry["mids"]
        assert [name_of[m] for m in entry["mids"]] == entry["names"] and entry["reason"]
    assert set(data["manual"]) == {k for k, v in data["match"].items() if v == "manual"}


def test_rule_matches_follow_the_documented_rules():
    """Re-derive the exact and normalised matches from the shipped lists; manual ones match no rule."""
    data = mapping()
    stop = set(data["method"]["stop_words"])

    def normalise(text):
        return " ".join(w for w in re.sub(r"[^a-z0-9]+", " ", text.lower()).split() if w not in stop)

    by_lower = {c.name.lower(): c.mid for c in audioset_classes()}
    by_norm: dict[str, set[str]] = {}
    for c in audioset_classes():
        for alt in [c.name, *c.name.split(", ")]:
            by_norm.setdefault(normalise(alt), set()).add(c.mid)
    for label in data["vggsound_classes"]:
        kind = data["match"].get(label)
        if label.lower() in by_lower:
            assert kind == "exact" and data["mapping"][label] == [by_lower[label.lower()]], label
        elif normalise(label) in by_norm:
            assert kind == "normalised" and data["mapping"][label] == sorted(by_norm[normalise(label)]), label
        else:
            assert kind in ("manual", None), label


def test_lookups_and_subsets():
    data = mapping()
    assert vggsound_to_audioset("male speech, man speaking") == ("/m/05zppz",)
    assert vggsound_to_audioset("playing piano") == ("/m/05r5c",)  # normalised: 'playing' dropped
    assert vggsound_to_audioset("dog barking") == ("/m/05tny_",)  # manual: Bark
    assert vggsound_to_audioset(data["unmatched_vggsound"][0]) == ()
    with pytest.raises(ManifestError, match="did you mean 'dog barking'"):
        vggsound_to_audioset("dog barkin")
    assert subset("vggsound") == data["vggsound_classes"] and len(subset("vggsound")) == 309
    assert subset("vggsound-mapped") == sorted(data["mapping"])
    for name, entry in data["subsets"].items():
        assert entry["size"] == len(entry["labels"]) == len(subset(name))
        assert set(entry["labels"]) <= set(data["vggsound_classes"]) and entry["labels"] == sorted(entry["labels"])
    with pytest.raises(ManifestError, match="choose one of vggsound, vggsound-common, vggsound-mapped"):
        subset("vggsound-tiny")
    subset("vggsound").clear()  # callers get a copy
    assert len(subset("vggsound")) == 309


def test_doc_states_the_shipped_counts_and_unmatched_labels():
    data, doc = mapping(), DOC.read_text(encoding="utf-8")
    for kind, count in data["counts"].items():
        assert re.search(rf"\| {kind}\b[^|]*\| {count} \|", doc), (kind, count)
    for name, entry in data["subsets"].items():
        assert f"`{name}` | {entry['size']} |" in doc, name
    for label in data["unmatched_vggsound"]:
        assert f"`{label}`" in doc, label
    for label, entry in data["manual"].items():
        assert f"| `{label}` | {', '.join(entry['names'])} |" in doc, label


def test_csv_level_errors_name_the_line(tmp_path):
    """A field past the csv module's size limit (a corrupt download) is a ManifestError, not a csv.Error."""
    path = tmp_path / "vggsound.csv"
    path.write_text(_with_line(vggsound_text(), 2, "abcdefghijk,0," + "x" * 200_000 + ",train"))
    _raises_at(read_vggsound_csv, path, 2, "not valid csv")
    path = tmp_path / "eval_segments.csv"
    path.write_text(_with_line(segments_text(), 5, 'abcdefghijk, 0.000, 10.000, "' + "x" * 200_000 + '"'))
    _raises_at(read_audioset_segments, path, 5, "not valid csv")
