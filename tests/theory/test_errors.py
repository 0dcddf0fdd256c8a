"""One error class: a user's mistake is one sentence and exit 1; a bug keeps its traceback and asks for a report."""

import click
import pytest
from click.testing import CliRunner

from mke_theory.core.errors import REPORT_BUG, MKEError, user_errors


def command(exc):
    @click.command()
    @user_errors
    def cmd():
        raise exc

    return cmd


@pytest.mark.parametrize("exc, code, text", [
    (MKEError("data.frames must lie in [1, inf], got 0"), 1, "Error: data.frames must lie in [1, inf], got 0"),
    (FileNotFoundError(2, "No such file or directory", "runs/x.json"), 1, "Error: runs/x.json: No such file"),
])
def test_user_mistakes_end_in_one_sentence(exc, code, text):
    result = CliRunner().invoke(command(exc))
    assert result.exit_code == code
    assert result.output.strip() == text.strip() or result.output.startswith(text)
    assert "Traceback" not in result.output and REPORT_BUG not in result.output


@pytest.mark.parametrize("exc", [ValueError("operands could not be broadcast"), KeyError("metrics"),
                                 OSError("a socket error without a path")])
def test_a_bug_keeps_its_traceback_and_asks_for_a_report(exc):
    result = CliRunner().invoke(command(exc))
    assert result.exit_code == 70
    assert "Traceback" in result.output and REPORT_BUG in result.output


def test_library_errors_are_mke_errors_and_still_value_errors():
    from mke_theory.core.records import RecordError

    assert issubclass(RecordError, MKEError) and issubclass(MKEError, ValueError)
