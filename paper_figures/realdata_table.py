"""A real-data table (mfeat, RAVDESS, NYU Depth V2, VGGSound, AudioSet→VGGSound) from run records.

Usage: python paper_figures/realdata_table.py TASK [--runs runs] [--out paper_figures/out]
Records are read from RUNS/TASK; without them the script says which command makes them.
"""

import sys

from _common import arguments, caption_gaps, records_command, records_for, table_numbers, write_table

from mke_experiments.metrics import LABELS
from mke_experiments.tasks import TASKS
from mke_theory.results.reference import PAPER_LABEL
from mke_theory.results.tables import format_table

args = arguments(__doc__.splitlines()[0], "runs",
                 extra=lambda p: p.add_argument("task", choices=sorted(TASKS), help="which task's table"))
task = TASKS[args.task]  # the task says its metric and, where the paper has one, the reference column
metric, what = f"test_{task.primary}", LABELS[task.primary]
reference = None if task.reference is None else {m: f"{v:.2f}" for m, v in task.reference.items()}
records = records_for(args.runs / args.task, args.task, records_command(args.task, args.runs / args.task),
                      needs_data=task.needs_data,
                      outputs=[args.out / f"table_{args.task}.md", args.out / f"table_{args.task}.tex"])
if records is None:
    sys.exit(0)
summary, comparisons, gaps = table_numbers(records, metric, "teacher", args.task, expected=reference or ())
caption = (f"{args.task}: {what}, mean ± std over seeds" + ("; reference column: the paper" if reference else "")
           + caption_gaps(gaps))
write_table(args.out, f"table_{args.task}",
            format_table(summary, comparisons, fmt="markdown", caption=caption, reference=reference,
                         reference_label=PAPER_LABEL),
            format_table(summary, comparisons, fmt="latex", caption=caption, reference=reference,
                         reference_label=PAPER_LABEL))
