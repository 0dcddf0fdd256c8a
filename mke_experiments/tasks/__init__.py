"""The tasks. Importing this package imports every task module, each of which registers itself
with ``mke_experiments.tasks.registry.register_task``; adding a task is one module and one name below.
"""

from mke_experiments.tasks import arrays, avsound, mfeat, nyudv2, ravdess  # noqa: F401  (registration)
from mke_experiments.tasks.registry import TASKS, Task, data_dir_or_error, get_preparer, get_task, register_task

__all__ = ["TASKS", "Task", "data_dir_or_error", "get_preparer", "get_task", "register_task"]
