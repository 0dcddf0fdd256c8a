"""The one error class for everything a user can cause.

``MKEError`` is raised for a bad option or argument, a missing, corrupt or stale file, data of
the wrong shape, and every other mistake the person running the library can fix. It subclasses
``ValueError`` so that code written against ``ValueError`` keeps working. The command-line tools
turn an ``MKEError`` (and an ``OSError`` about one of the user's paths) into one sentence and a
non-zero exit; any other exception is a bug of the library and keeps its traceback.
"""

from __future__ import annotations


class MKEError(ValueError):
    """A mistake of the user's, told in one sentence that names the thing and the fix."""


REPORT_BUG = ("This is a bug in mke, not a mistake of yours: please report it with the traceback above "
              "and the command you ran.")


def user_errors(command):
    """Decorate a CLI command: a user's mistake ends in one sentence and exit status 1.

    ``MKEError`` and ``OSError`` about one of the user's paths (it names a file) become
    ``Error: <sentence>`` on stderr. Anything else is a bug: its traceback is printed with a line
    asking to report it, and the exit status is 70 (``EX_SOFTWARE``). ``MKE_DEBUG=1`` lets every
    exception propagate unchanged.
    """
    import functools

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        import os
        import sys

        if os.environ.get("MKE_DEBUG"):
            return command(*args, **kwargs)
        try:
            return command(*args, **kwargs)
        except MKEError as e:
            message = str(e)
        except OSError as e:
            if e.filename is None:  # not about a path the user gave: a bug, or the machine's trouble
                _report_bug()
            message = f"{e.filename}: {e.strerror or e}"
        except Exception:
            _report_bug()
        print(f"Error: {message}", file=sys.stderr)
        sys.exit(1)

    return wrapper


def _report_bug():
    import sys
    import traceback

    traceback.print_exc()
    print(REPORT_BUG, file=sys.stderr)
    sys.exit(70)
