"""Bad options, ``--set`` keys and hand-edited records (issue 23, cases 5, 9, 10 and 11): thread counts and
seeds the parsers once let through to torch, a ``--set`` that renamed the task, prepare sizes of terabytes, and
records that ``mke-exp report`` believed or merged."""

from __future__ import annotations

import json

from mke_theory.core.records import make_record

RUN = ("--epochs", "1", "--seeds", "0", "--device", "cpu", "--methods", "teacher")
PREPARE = ("prepare", "ravdess", "--raw", "{options_raw}", "--out", "{options_no_cache}")


def _record(**changes) -> dict:
    """A complete record of the arrays task (as ``mke-exp run`` writes one), with ``changes`` made by hand."""
    config = dict(task="arrays", train=dict(lr=0.001, epochs=1), split_id="abc")
    record = make_record(task="arrays", method="teacher", seed=0, metrics=dict(test_accuracy=0.5), config=config,
                         wall_time_s=1.0, split_id="abc")
    record.update(changes)
    return record


def _folder(tmp, name: str, records: dict):
    path = tmp / name
    path.mkdir()
    for file, record in records.items():
        (path / file).write_text(record if isinstance(record, str) else json.dumps(record))
    return path


def make_files(tmp) -> dict:
    raw = tmp / "options_raw"
    raw.mkdir()
    other = _record(seed=1, config=dict(task="arrays", train=dict(lr=0.01, epochs=1), split_id="abc"))
    other["config_hash"] = make_record(**{k: other[k] for k in ("task", "method", "seed", "metrics", "config",
                                                               "wall_time_s")})["config_hash"]
    return dict(
        options_raw=raw,
        options_no_cache=tmp / "options_no_cache",
        options_bool_metric=_folder(tmp, "options_bool_metric",
                                    {"bool.json": _record(metrics=dict(test_accuracy=True))}),
        options_empty_metrics=_folder(tmp, "options_empty_metrics", {"empty.json": _record(metrics={})}),
        options_negative_seed=_folder(tmp, "options_negative_seed", {"negative.json": _record(seed=-3)}),
        options_empty_task=_folder(tmp, "options_empty_task", {"notask.json": _record(task="")}),
        options_wrong_hash=_folder(tmp, "options_wrong_hash", {"hash.json": _record(config_hash="0123456789")}),
        options_inf_metric=_folder(tmp, "options_inf_metric", {  # json.dumps writes a bare Infinity
            "inf.json": _record(metrics=dict(test_accuracy=float("inf"))),
            "fine.json": _record(seed=1)}),
        options_two_configs=_folder(tmp, "options_two_configs", {"lr3.json": _record(), "lr2.json": other}),
    )


# (case id, "exp" | "theory", argv with {file} placeholders, fragment of the one-sentence message)
CASES = [
    # ---- case 9: thread counts and seeds the parsers let through to torch
    ("threads-superscript", "exp", ["run", "arrays", "--data", "{good}", *RUN, "--threads", "²"], "--threads"),
    ("threads-huge", "exp", ["run", "arrays", "--data", "{good}", *RUN, "--threads", "99999999999"],
     "--threads must be at most"),
    ("threads-theory-huge", "theory", ["simulate", "--steps", "1", "--threads", "99999999999"],
     "--threads must be at most"),
    ("seeds-2-64", "exp", ["run", "arrays", "--data", "{good}", "--epochs", "1", "--device", "cpu",
                           "--methods", "teacher", "--seeds", "18446744073709551616,"], "2**64"),
    ("seeds-theory-2-64", "theory", ["twomoon", "--no-figure", "--seeds", "18446744073709551616,"], "2**64"),
    ("seeds-arabic-digit", "exp", ["run", "arrays", "--data", "{good}", "--epochs", "1", "--device", "cpu",
                                   "--methods", "teacher", "--seeds", "\u0663,"], "ASCII digits"),
    ("seeds-underscore", "exp", ["run", "arrays", "--data", "{good}", "--epochs", "1", "--device", "cpu",
                                 "--methods", "teacher", "--seeds", "1_0,"], "ASCII digits"),
    ("check-seed-2-64", "exp", ["check", "arrays", "--data", "{good}", "--epochs", "1", "--device", "cpu",
                                "--seed", "18446744073709551616"], "--seed"),
    # ---- case 9: prepare sizes of terabytes, refused with what they would cost
    ("prepare-size-huge", "exp", [*PREPARE, "--set", "prepare.size=100000"], "prepare.size=100000"),
    ("prepare-frames-huge", "exp", [*PREPARE, "--set", "prepare.frames=1000000"], "per clip"),
    ("prepare-seconds-huge", "exp", ["prepare", "vggsound", "--raw", "{options_raw}", "--out", "{options_no_cache}",
                                     "--set", "prepare.seconds=1e9"], "prepare.seconds=1e9"),
    ("run-prepare-size-huge", "exp", ["run", "ravdess", "--data", "{options_no_cache}", *RUN,
                                      "--set", "prepare.n_mels=100000000"], "prepare.n_mels"),
    ("prepare-nyu-size-huge", "exp", ["prepare", "nyudv2", "--raw", "{options_raw}", "--out", "{options_no_cache}",
                                      "--set", "prepare.size=100000,100000"], "prepare.size"),
    # ---- case 5: the task is the command's, not a --set key
    ("set-task", "exp", ["run", "arrays", "--data", "{good}", *RUN, "--set", "task=mfeat"], "task=mfeat"),
    ("set-prepare-group", "exp", ["run", "arrays", "--data", "{good}", *RUN, "--set", "prepare=x"], "prepare"),
    # ---- case 10: hand-edited records, and two configs of one method
    ("report-bool-metric", "exp", ["report", "{options_bool_metric}"], "bool.json: metric test_accuracy"),
    ("report-empty-metrics", "exp", ["report", "{options_empty_metrics}"], "empty.json: metrics"),
    ("report-negative-seed", "exp", ["report", "{options_negative_seed}"], "negative.json: seed"),
    ("report-empty-task", "exp", ["report", "{options_empty_task}"], "notask.json: task"),
    ("report-wrong-hash", "exp", ["report", "{options_wrong_hash}"], "hash.json: config_hash"),
    ("report-two-configs", "exp", ["report", "{options_two_configs}"], "train.lr"),
    # ---- case 11: a non-finite metric names its file
    ("report-inf-metric", "exp", ["report", "{options_inf_metric}"], "inf.json: metric test_accuracy is inf"),
]
