"""Run records: complete fields, one file per identity, atomic writes, errors that name the file."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mke_theory
from mke_theory.core import records
from mke_theory.core.records import (
    REQUIRED,
    SCHEMA_VERSION,
    RecordError,
    config_hash,
    make_record,
    read_record,
    read_records,
    record_path,
    write_record,
)

CONFIG = {"lr": 0.01, "steps": 2000, "regularizer": "input_noise", "split_id": "abc123"}


def a_record(method="mm_student", seed=0, variant="", task="twomoon", accuracy=0.75, config=None):
    return make_record(task=task, method=method, seed=seed, metrics={"test_accuracy": accuracy},
                       config=dict(CONFIG) if config is None else config, wall_time_s=1.25, variant=variant)


def folder_names(folder: Path) -> list[str]:
    """Every entry under ``folder``, hidden ones included, relative and sorted."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# ---- make_record ---------------------------------------------------------------------------------


def test_make_record_fills_every_required_field():
    record = make_record(task="twomoon", method="teacher", seed=np.int64(39), metrics={"test_accuracy": 0.695},
                         config=dict(CONFIG), wall_time_s=2)
    for field in (*REQUIRED, "config_hash"):
        assert field in record, field
    assert record["task"] == "twomoon"
    assert record["method"] == "teacher"
    assert record["seed"] == 39 and type(record["seed"]) is int
    assert record["metrics"] == {"test_accuracy": 0.695}
    assert record["config"] == CONFIG
    assert record["wall_time_s"] == 2.0 and type(record["wall_time_s"]) is float
    assert record["version"] == mke_theory.__version__
    assert record["schema_version"] == SCHEMA_VERSION
    assert record["config_hash"] == config_hash(CONFIG)
    assert record["split_id"] == "abc123"  # taken from the config when not passed


def test_every_documented_record_field_is_written():
    """The run-record contract of docs/records.md: a dropped field (e.g. git_revision) fails here."""
    import subprocess

    record = make_record(task="twomoon", method="teacher", seed=1, metrics={"test_accuracy": 0.5}, config=dict(CONFIG),
                         wall_time_s=1.0, history=[{"epoch": 0, "loss": 1.0}], hardware="cpu x2", world_size=2,
                         ensemble_size=3, variant="v")
    fields = {"schema_version", "task", "method", "variant", "seed", "metrics", "config", "config_hash", "split_id",
              "wall_time_s", "history", "hardware", "world_size", "ensemble_size", "version", "git_revision"}
    assert fields <= set(record), fields - set(record)
    assert (record["variant"], record["history"], record["hardware"], record["world_size"], record["ensemble_size"]) \
        == ("v", [{"epoch": 0, "loss": 1.0}], "cpu x2", 2, 3)
    here = Path(records.__file__).parent
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True)
    if head.returncode == 0:  # in a git checkout the record names its commit
        assert record["git_revision"] == head.stdout.strip()


def test_make_record_rejects_an_unknown_method():
    with pytest.raises(RecordError, match="unknown method 'teacher2'"):
        a_record(method="teacher2")


# ---- write_record / read_record ------------------------------------------------------------------


def test_write_record_writes_one_file_per_identity_and_read_record_round_trips(tmp_path):
    base = a_record()
    others = [
        a_record(task="simulate"),
        a_record(method="um_student"),
        a_record(variant="eta=0.3"),
        a_record(seed=1),
        a_record(config=dict(CONFIG, lr=0.02)),
    ]
    paths = [write_record(r, tmp_path) for r in [base, *others]]
    assert len(set(paths)) == 6
    assert folder_names(tmp_path) == sorted(p.name for p in paths)
    for record, path in zip([base, *others], paths, strict=True):
        assert path == record_path(record, tmp_path)
        assert path.suffix == ".json"
        for part in (record["task"], record["method"], f"seed{record['seed']}", record["config_hash"]):
            assert part in path.name
        assert read_record(path) == record


def test_write_record_creates_the_folder(tmp_path):
    record = a_record()
    path = write_record(record, tmp_path / "runs" / "twomoon")
    assert path.parent == tmp_path / "runs" / "twomoon"
    assert read_record(path) == record


def test_second_write_without_force_raises_naming_the_path_and_keeps_the_first(tmp_path):
    first = a_record(accuracy=0.75)
    second = a_record(accuracy=0.50)  # same task, method, variant, seed and config: same file
    path = write_record(first, tmp_path)
    before = path.read_text()
    with pytest.raises(RecordError) as info:
        write_record(second, tmp_path)
    assert str(path) in str(info.value)
    assert "force" in str(info.value)
    assert path.read_text() == before
    assert folder_names(tmp_path) == [path.name]


def test_force_replaces_the_record(tmp_path):
    path = write_record(a_record(accuracy=0.75), tmp_path)
    assert write_record(a_record(accuracy=0.50), tmp_path, force=True) == path
    assert read_record(path)["metrics"] == {"test_accuracy": 0.50}
    assert folder_names(tmp_path) == [path.name]


def half_then_fail(fd):
    """An ``os.fsync`` that dies after the bytes went to the temporary file (a full disk, a kill)."""
    raise OSError("No space left on device")


def test_failed_dump_leaves_no_partial_or_temporary_file(tmp_path, monkeypatch):
    monkeypatch.setattr(records.os, "fsync", half_then_fail)
    with pytest.raises(OSError, match="No space left"):
        write_record(a_record(), tmp_path)
    assert folder_names(tmp_path) == []


def test_failed_forced_dump_keeps_the_existing_record(tmp_path, monkeypatch):
    path = write_record(a_record(accuracy=0.75), tmp_path)
    before = path.read_text()
    monkeypatch.setattr(records.os, "fsync", half_then_fail)
    with pytest.raises(OSError, match="No space left"):
        write_record(a_record(accuracy=0.50), tmp_path, force=True)
    assert folder_names(tmp_path) == [path.name]
    assert path.read_text() == before


# ---- read_records --------------------------------------------------------------------------------


def test_read_records_reads_every_record_recursively_sorted_by_file_name(tmp_path):
    written = [write_record(a_record(seed=s), tmp_path) for s in (2, 0)]
    written.append(write_record(a_record(method="teacher"), tmp_path / "sub"))
    found = read_records(tmp_path)
    assert len(found) == 3
    assert found == [read_record(p) for p in sorted(written)]


def _invalid_json(record):
    return '{"task": "twomoon", "method": '


def _missing_metrics(record):
    return json.dumps({k: v for k, v in record.items() if k != "metrics"})


def _unknown_method(record):
    return json.dumps(dict(record, method="teacher_v2"))


def _wrong_schema(record):
    return json.dumps(dict(record, schema_version=SCHEMA_VERSION + 1))


def _not_an_object(record):
    return json.dumps([record])


@pytest.mark.parametrize("corrupt, says", [
    (_invalid_json, "JSON"),
    (_missing_metrics, "metrics"),
    (_unknown_method, "teacher_v2"),
    (_wrong_schema, "schema_version"),
    (_not_an_object, "JSON object"),
], ids=["invalid-json", "missing-field", "unknown-method", "wrong-schema", "not-an-object"])
def test_read_records_names_the_corrupt_file(tmp_path, corrupt, says):
    write_record(a_record(seed=0), tmp_path)
    bad = tmp_path / "twomoon__mm_student__seed7__0123456789.json"
    bad.write_text(corrupt(a_record(seed=7)))
    with pytest.raises(RecordError) as info:
        read_records(tmp_path)
    assert bad.name in str(info.value)
    assert says in str(info.value)


def test_read_records_on_a_missing_folder_raises(tmp_path):
    with pytest.raises(RecordError, match="no-such-runs"):
        read_records(tmp_path / "no-such-runs")


# ---- config_hash and serialisation ---------------------------------------------------------------


def test_config_hash_ignores_key_order_and_follows_values():
    config = {"a": 1, "b": {"c": [1, 2], "d": "x"}, "e": 0.5}
    reordered = {"e": 0.5, "b": {"d": "x", "c": [1, 2]}, "a": 1}
    assert config_hash(config) == config_hash(reordered)
    assert config_hash(config) != config_hash(dict(config, a=2))
    assert config_hash(config) != config_hash(dict(config, b={"c": [1, 3], "d": "x"}))
    assert config_hash(config) != config_hash(dict(config, f=None))
    assert len(config_hash(config)) == 10


@settings(max_examples=50, deadline=None)
@given(st.dictionaries(st.text(max_size=5), st.integers(-10**6, 10**6), min_size=1, max_size=8), st.data())
def test_config_hash_order_independent_and_value_sensitive(config, data):
    assert config_hash(config) == config_hash(dict(reversed(list(config.items()))))
    key = data.draw(st.sampled_from(sorted(config)))
    assert config_hash(config) != config_hash(dict(config, **{key: config[key] + 1}))


def test_numpy_values_are_serialised(tmp_path):
    metrics = {"test_accuracy": np.float32(0.5), "corrected": np.int64(3)}
    config = {"noise": np.array([0.1, 0.3]), "steps": np.int32(200), "flag": np.bool_(True),
              "grid": np.arange(4).reshape(2, 2), "out": Path("runs") / "x", "seeds": (0, 1)}
    record = make_record(task="simulate", method="teacher", seed=np.int64(0), metrics=metrics, config=config,
                         wall_time_s=np.float64(0.1))
    back = read_record(write_record(record, tmp_path))
    assert back["metrics"] == {"test_accuracy": 0.5, "corrected": 3}
    assert type(back["metrics"]["corrected"]) is int
    assert back["config"] == {"noise": [0.1, 0.3], "steps": 200, "flag": True, "grid": [[0, 1], [2, 3]],
                              "out": str(Path("runs") / "x"), "seeds": [0, 1]}
    assert back["config_hash"] == config_hash(back["config"])


def test_duplicate_runs_in_copied_folders_are_detected(tmp_path):
    from mke_theory.core.records import RecordError, make_record, read_records, write_record

    record = make_record("twomoon", "mm_student", 3, {"test_accuracy": 0.775}, {"lr": 0.01}, 0.1)
    write_record(record, tmp_path / "a")
    write_record(record, tmp_path / "b")
    with pytest.raises(RecordError, match="duplicates"):
        read_records(tmp_path)
    assert len(read_records(tmp_path, on_duplicate="first")) == 1
    other = make_record("twomoon", "mm_student", 3, {"test_accuracy": 0.775}, {"lr": 0.02}, 0.1)
    write_record(other, tmp_path / "b")
    assert len(read_records(tmp_path, on_duplicate="first")) == 2  # another config is another run


# ---- file modes and temporaries of killed writers --------------------------------------------------


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_records_honour_the_umask_like_a_plain_open(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        path = write_record(a_record(), tmp_path)
        other = tmp_path / "blob.bin"
        records.atomic_write(other, lambda f: f.write(b"x"))
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == mode  # mkstemp alone gives 0600 whatever the umask
    assert stat.S_IMODE(other.stat().st_mode) == mode


def test_a_write_removes_the_stale_temporaries_of_its_target_only(tmp_path):
    """A kill between mkstemp and rename leaves ``.NAME.XXXX.tmp``; the next write of NAME removes those
    untouched for an hour, never a fresh one (another writer's, live) nor those of other files."""
    path = record_path(a_record(), tmp_path)
    stale = tmp_path / f".{path.name}.abc123.tmp"
    live = tmp_path / f".{path.name}.def456.tmp"
    other = tmp_path / ".other.json.ghi789.tmp"
    for p in (stale, live, other):
        p.write_bytes(b"half a record")
    old = time.time() - 2 * records.STALE_TMP_S
    os.utime(stale, (old, old))
    os.utime(other, (old, old))
    write_record(a_record(), tmp_path)
    assert not stale.exists()
    assert live.exists() and other.exists()
    assert folder_names(tmp_path) == sorted([path.name, live.name, other.name])
