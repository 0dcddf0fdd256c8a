"""Bad config files (issue 25, point 1): ``--config FILE.yaml`` on run, check, bench, prepare and config ends in
one sentence naming the file and the key (the same sentences as --set), before any data are read."""

from __future__ import annotations

from mke_experiments.testing.bundles import write_bundle

RUN = ("--epochs", "1", "--seeds", "0", "--device", "cpu", "--methods", "teacher")
TEXTS = {
    "unknown_key": "train:\n  lrr: 0.1\n",
    "bad_value": "train:\n  epochs: -3\n",
    "list_for_number": "train:\n  lr: [0.1, 0.2]\n",
    "not_mapping": "- train\n- model\n",
    "tabs": "train:\n\tepochs: 5\n",
    "twice": "train:\n  lr: 0.1\n  lr: 0.2\n",
    "broken": "train: [1, 2\n",
    "ignored": "model:\n  backbone: resnet50\n",
    "group_value": "train: 5\n",
    "top_typo": "trian:\n  epochs: 2\n",
    "other_task": "task: ravdess\ntrain:\n  epochs: 2\n",
    "momentum_adam": "train:\n  momentum: 0.5\n",
    "good": "train:\n  lr: 0.1\n",
}


def make_files(tmp):
    f = {f"config_files_{name}": tmp / f"config_files_{name}.yaml" for name in TEXTS}
    for name, text in TEXTS.items():
        f[f"config_files_{name}"].write_text(text)
    f["config_files_binary"] = tmp / "config_files_binary.yaml"
    f["config_files_binary"].write_bytes(b"\xff\xfe\x00train: 1")
    f["config_files_bundle"] = write_bundle(tmp / "config_files_bundle.npz")
    f["config_files_raw"] = tmp / "config_files_raw"
    f["config_files_raw"].mkdir()
    return f


def _run(name, *more):
    return ["run", "arrays", "--data", "{config_files_bundle}", *RUN, "--config", "{config_files_" + name + "}",
            *more]


CASES = [
    ("config-run-unknown-key", "exp", _run("unknown_key"),
     "config_files_unknown_key.yaml: unknown config key 'train.lrr'"),
    ("config-run-bad-value", "exp", _run("bad_value"),
     "config_files_bad_value.yaml: train.epochs must lie in [1, inf], got -3"),
    ("config-run-list-for-number", "exp", _run("list_for_number"),
     "config_files_list_for_number.yaml: train.lr takes a number, got a list"),
    ("config-run-not-mapping", "exp", _run("not_mapping"), "config_files_not_mapping.yaml holds a list, not a mapping"),
    ("config-run-tabs", "exp", _run("tabs"), "config_files_tabs.yaml line 2 is indented with a tab"),
    ("config-run-key-twice", "exp", _run("twice"), "the key 'lr' is given twice"),
    ("config-run-broken-yaml", "exp", _run("broken"), "config_files_broken.yaml is not valid YAML"),
    ("config-run-ignored-key", "exp", _run("ignored"),
     "config_files_ignored.yaml: task arrays does not use model.backbone"),
    ("config-run-group-value", "exp", _run("group_value"), "config_files_group_value.yaml: train is a group"),
    ("config-run-top-typo", "exp", _run("top_typo"), "config_files_top_typo.yaml: unknown key 'trian'"),
    ("config-run-other-task", "exp", _run("other_task"),
     "config_files_other_task.yaml is a config of task ravdess, not arrays"),
    ("config-run-preset-other-task", "exp",
     ["run", "arrays", "--data", "{config_files_bundle}", *RUN, "--config", "nyudv2-paper"],
     "nyudv2-paper.yaml is a config of task nyudv2, not arrays"),
    ("config-run-momentum-adam", "exp", _run("momentum_adam"),
     "train.momentum is read only with train.optimizer=sgd"),
    ("config-run-binary", "exp", _run("binary"), "config_files_binary.yaml is not a text file"),
    ("config-run-missing", "exp",
     ["run", "arrays", "--data", "{config_files_bundle}", *RUN, "--config", "no-such-preset"],
     "--config no-such-preset: no such file, and no preset of that name"),
    ("config-run-set-still-checked", "exp", _run("good", "--set", "train.lr=-1"),
     "train.lr must lie in (0, inf], got -1.0"),
    ("config-check-unknown-key", "exp",
     ["check", "arrays", "--data", "{config_files_bundle}", "--config", "{config_files_unknown_key}"],
     "config_files_unknown_key.yaml: unknown config key 'train.lrr'"),
    ("config-bench-bad-value", "exp", ["bench", "arrays", "--config", "{config_files_bad_value}"],
     "config_files_bad_value.yaml: train.epochs must lie in [1, inf], got -3"),
    ("config-prepare-other-task", "exp",
     ["prepare", "nyudv2", "--raw", "{config_files_raw}", "--out", "{config_files_raw}/out", "--config",
      "ravdess-mfh"], "ravdess-mfh.yaml is a config of task ravdess, not nyudv2"),
    ("config-show-unknown-key", "exp", ["config", "arrays", "--config", "{config_files_unknown_key}"],
     "config_files_unknown_key.yaml: unknown config key 'train.lrr'"),
    ("config-show-set-wrong", "exp", ["config", "arrays", "--set", "train.schedule=linear"],
     "train.schedule must be one of none, step, cosine, poly; got 'linear'"),
]
