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
            if _disk_full(e):  # a write that found the disk full, wherever it was made: the machine's trouble
                message = _disk_full_sentence(e)
            elif e.filename is None:  # not about a path the user gave: a bug, or the machine's trouble
                _report_bug()
            else:
                message = f"{e.filename}: {e.strerror or e}"
        except Exception as e:
            if not _disk_full(e):
                _report_bug()
            message = _disk_full_sentence(e)
        print(f"Error: {message}", file=sys.stderr)
        sys.exit(1)

    return wrapper


def _chain(error: BaseException):
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def _disk_full(error: BaseException) -> bool:
    """Whether ``error`` or one it was raised from is an OSError of a full disk or quota: a write outside
    ``records.atomic_write`` (a figure, a TensorBoard event file, a JSON summary) that found no space."""
    import errno

    full = {errno.ENOSPC, getattr(errno, "EDQUOT", 122)}
    return any(isinstance(e, OSError) and e.errno in full for e in _chain(error))


def _disk_full_sentence(error: BaseException) -> str:
    named = next((e.filename for e in _chain(error) if isinstance(e, OSError) and e.filename), None)
    where = f"{named}: " if named else ""
    return (f"{where}no space left on the disk (or the disk quota is exceeded) while writing; free some space or "
            "choose another folder and run the command again (finished records and checkpoints are kept).")


def _report_bug():
    import sys
    import traceback

    traceback.print_exc()
    print(REPORT_BUG, file=sys.stderr)
    sys.exit(70)
