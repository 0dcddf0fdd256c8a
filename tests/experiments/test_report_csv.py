"""``mke-exp report --format csv``, ``mke-exp run --name`` and an external teacher's row, end to end (issue
point 2): the CSV holds the markdown table's numbers, a name goes into the records and tables while the config
and its hash stay the task's, and the external teacher is one fixed value tested by one-sample tests."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy import stats as st

from mke_experiments.cli import cli
from mke_experiments.config import ExperimentConfig, record_dict, resolve_config
from mke_experiments.tasks import get_task
from mke_experiments.testing.bundles import write_bundle
from mke_theory.core.errors import MKEError
from mke_theory.core.records import read_records
from mke_theory.generators import gaussian_mixture

SPLIT = gaussian_mixture(n_classes=3, n_labeled=30, n_unlabeled=120, n_test=60, random_state=0)
RUN = ["--seeds", "0,1,2", "--epochs", "2", "--methods", "teacher,um_student,mm_student", "--device", "cpu"]


def _external_bundle(path):
    """A bundle with its own teacher: true pseudo labels on D_u, test predictions 45 of 60 right."""
    probs = np.eye(3)[SPLIT.test_labels] * 0.8 + 0.2 / 3
    probs[:15] = np.eye(3)[(SPLIT.test_labels[:15] + 1) % 3] * 0.8 + 0.2 / 3
    return write_bundle(path, SPLIT, pseudo_labels=SPLIT.unlabeled_labels, teacher_test_probs=probs)


def _run(*args):
    result = CliRunner().invoke(cli, ["run", *map(str, args)])
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same external-teacher bundle run without and with --name."""
    tmp = tmp_path_factory.mktemp("runs")
    bundle = _external_bundle(tmp / "bc.npz")
    plain = _run("arrays", "--data", bundle, "--out", tmp / "plain", *RUN)
    named = _run("arrays", "--data", bundle, "--name", "breast-cancer", "--out", tmp / "named", *RUN)
    return tmp, plain, named


def _rows(text: str) -> dict:
    return {tuple(c.strip() for c in line.strip("|").split("|"))[:2]: [c.strip() for c in line.strip("|").split("|")]
            for line in text.splitlines() if line.startswith("| ") and not line.startswith("| task")}


def test_a_name_goes_into_the_records_the_files_and_the_table(runs):
    tmp, plain, named = runs
    records = read_records(tmp / "named")
    assert {r["task"] for r in records} == {"breast-cancer"}
    assert {r["config"]["task"] for r in records} == {"arrays"}  # the task that trained them
    assert all(p.name.startswith("breast-cancer__") for p in (tmp / "named").glob("*.json"))
    assert all(p.name.startswith("breast-cancer__") for p in (tmp / "named" / "check").iterdir())
    assert "| breast-cancer | mm_student |" in named.output and "breast-cancer: test accuracy" in named.output
    report = CliRunner().invoke(cli, ["report", str(tmp / "named")])
    assert report.exit_code == 0 and "| breast-cancer | teacher |" in report.output
    assert "arrays" not in report.stdout.split("\n\n")[0]


def test_a_name_changes_neither_the_config_nor_its_hash_nor_the_numbers(runs):
    tmp = runs[0]
    plain = {(r["method"], r["seed"]): r for r in read_records(tmp / "plain")}
    named = {(r["method"], r["seed"]): r for r in read_records(tmp / "named")}
    assert plain.keys() == named.keys()
    for key, r in plain.items():
        assert r["task"] == "arrays" and named[key]["config"] == r["config"]
        assert named[key]["config_hash"] == r["config_hash"] and named[key]["metrics"] == r["metrics"]
    assert sorted(p.name.replace("arrays__", "breast-cancer__", 1) for p in (tmp / "plain").glob("*.json")) == \
        sorted(p.name for p in (tmp / "named").glob("*.json"))


def test_a_run_without_a_name_writes_what_it_wrote_before():
    cfg = get_task("mfeat").default_config
    assert cfg.name == "" and "name" not in record_dict(cfg)  # the config and its hash as before the option
    named = resolve_config(get_task("mfeat"), ["name=my-mfeat"])
    assert named.name == "my-mfeat" and record_dict(named) == record_dict(cfg)


@pytest.mark.parametrize("name", ["bad name", "a/b", "x__y", "-x", "café", ""])
def test_a_bad_name_is_refused_in_one_sentence(tmp_path, name):
    bundle = write_bundle(tmp_path / "b.npz", SPLIT)
    result = CliRunner().invoke(cli, ["run", "arrays", "--data", str(bundle), "--name", name, "--epochs", "1"])
    assert result.exit_code != 0
    assert "letters, digits and single - or _" in result.output and "Traceback" not in result.output
    assert result.output.strip().count("\n") == 0  # one line
    assert not list(tmp_path.glob("**/*.json"))


def test_the_name_of_another_task_is_refused(tmp_path):
    bundle = write_bundle(tmp_path / "b.npz", SPLIT)
    result = CliRunner().invoke(cli, ["run", "arrays", "--data", str(bundle), "--name", "mfeat", "--epochs", "1"])
    assert result.exit_code != 0 and "is the name of another task" in result.output
    with pytest.raises(MKEError, match="may hold only"):
        ExperimentConfig(task="arrays", data=None, name="no spaces")


def test_the_external_teacher_is_one_fixed_value_and_the_students_are_tested_against_it(runs):
    tmp = runs[0]
    records = read_records(tmp / "named")
    teachers = [r for r in records if r["method"] == "teacher"]
    assert len(teachers) == 3 and {r["n_test"] for r in teachers} == {60}
    assert {tuple(r["proportion_metrics"]) for r in teachers} == {("test_accuracy",)}
    report = CliRunner().invoke(cli, ["report", str(tmp / "named")])
    row = _rows(report.stdout)[("breast-cancer", "teacher")]
    p, n, z = 45 / 60, 60, st.norm.ppf(0.975)  # Wilson by hand
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert row[2:5] == ["75.0", "fixed", f"[{100 * (centre - half):.1f}, {100 * (centre + half):.1f}]"]
    assert "one-sample t-test of the seeds against the fixed value" in report.stdout

    csv = pd.read_csv(io.StringIO(CliRunner().invoke(cli, ["report", str(tmp / "named"), "--format", "csv"]).stdout))
    csv = csv.set_index("method")
    assert csv.loc["teacher", "n"] == 1 and csv.loc["teacher", "fixed"] and csv.loc["teacher", "interval"] == "wilson"
    assert csv.loc["teacher", "ci_low"] == pytest.approx(centre - half, rel=1e-9)
    assert csv.loc["teacher", "ci_high"] == pytest.approx(centre + half, rel=1e-9)
    for method in ("um_student", "mm_student"):
        seeds = np.array([r["metrics"]["test_accuracy"] for r in sorted(records, key=lambda r: r["seed"])
                          if r["method"] == method])
        assert csv.loc[method, "design"] == "one-sample" and csv.loc[method, "n_compared"] == 3
        if np.ptp(seeds) > 0:
            assert csv.loc[method, "p_t"] == pytest.approx(st.ttest_1samp(seeds, 0.75).pvalue, rel=1e-9)


def test_report_csv_equals_the_markdown_table(runs):
    tmp = runs[0]
    markdown = CliRunner().invoke(cli, ["report", str(tmp / "plain")])
    result = CliRunner().invoke(cli, ["report", str(tmp / "plain"), "--format", "csv"])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(io.StringIO(result.stdout))
    assert len(table) == 3 and set(table["metric"]) == {"test_accuracy"}
    assert pd.api.types.is_float_dtype(table["mean"]) and pd.api.types.is_integer_dtype(table["n"])
    rows = _rows(markdown.stdout)
    for r in table.itertuples():
        cells = rows[(r.task, r.method)]
        assert cells[2].split(" ")[0] == f"{100 * r.mean:.1f}"
        if r.method != "teacher":
            assert cells[3] == str(r.n) and cells[4] == f"[{100 * r.ci_low:.1f}, {100 * r.ci_high:.1f}]"
            assert cells[5].split(" ")[0] == f"{100 * r.mean_diff:+.1f}"


def test_report_csv_with_bootstrap_keeps_stdout_a_csv(runs):
    tmp = runs[0]
    result = CliRunner().invoke(cli, ["report", str(tmp / "plain"), "--format", "csv", "--bootstrap"])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(io.StringIO(result.stdout))
    assert {"boot_low", "boot_high"} <= set(table.columns) and "percentile bootstrap" in result.stderr
    json.dumps(table.to_dict())  # plain values


def test_two_configs_of_one_method_are_refused_and_names_tell_them_apart(tmp_path):
    # bug caught (issue 23, case 10): report merged two runs of different learning rates into one row of n = 2
    bundle = write_bundle(tmp_path / "b.npz", SPLIT)
    short = ["--seeds", "0,", "--epochs", "1", "--methods", "teacher", "--device", "cpu"]
    _run("arrays", "--data", bundle, "--out", tmp_path / "runs", *short)
    _run("arrays", "--data", bundle, "--out", tmp_path / "runs", *short, "--set", "train.lr=0.01")
    report = CliRunner().invoke(cli, ["report", str(tmp_path / "runs")])
    assert report.exit_code == 1 and "Traceback" not in report.output, report.output
    assert "hold 2 configs of arrays/teacher" in report.output and "train.lr: " in report.output
    _run("arrays", "--data", bundle, "--out", tmp_path / "named", *short, "--name", "lr-default")
    _run("arrays", "--data", bundle, "--out", tmp_path / "named", *short, "--name", "lr-high", "--set", "train.lr=0.01")
    report = CliRunner().invoke(cli, ["report", str(tmp_path / "named")])
    assert report.exit_code == 0, report.output
    assert "| lr-default | teacher |" in report.output and "| lr-high | teacher |" in report.output


def test_records_without_a_config_hash_are_still_read(tmp_path):
    # the hash is checked where a record holds one; records of earlier versions without it stay readable
    bundle = write_bundle(tmp_path / "b.npz", SPLIT)
    _run("arrays", "--data", bundle, "--out", tmp_path / "runs", "--seeds", "0,", "--epochs", "1", "--methods",
         "teacher", "--device", "cpu")
    (path,) = (tmp_path / "runs").glob("*.json")
    record = json.loads(path.read_text())
    del record["config_hash"]
    path.write_text(json.dumps(record))
    assert CliRunner().invoke(cli, ["report", str(tmp_path / "runs")]).exit_code == 0
    path.write_text(json.dumps(dict(record, config_hash="0123456789")))  # a hash its config does not have: named
    report = CliRunner().invoke(cli, ["report", str(tmp_path / "runs")])
    assert report.exit_code == 1 and f"{path}: config_hash '0123456789' does not match" in report.output
