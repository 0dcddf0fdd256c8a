"""The TwoMoon table: teacher, UM student, MM student, MM supervised over seeds, vs the notebook."""

import sys

from _common import arguments, caption_gaps, records_for, table_numbers, write_table

from mke_theory.results.reference import NOTEBOOK_LABEL, NOTEBOOK_REFERENCE
from mke_theory.results.tables import format_table
from mke_theory.toy.twomoon import TASK

args = arguments(__doc__.splitlines()[0], "runs/twomoon")
records = records_for(args.runs, TASK, f"mke-theory twomoon --out {args.runs}",
                      outputs=[args.out / "twomoon_table.md", args.out / "twomoon_table.tex"])
if records is None:
    sys.exit(0)
summary, comparisons, gaps = table_numbers(records, "test_accuracy", "um_student", TASK,
                                           expected=NOTEBOOK_REFERENCE)
reference = {k: f"{v:.1f}" for k, v in NOTEBOOK_REFERENCE.items()}
caption = (f"TwoMoon test accuracy (%), mean ± std over {summary['n'].max()} seeds; "
           "reference column: official notebook, 10 runs" + caption_gaps(gaps))
write_table(args.out, "twomoon_table",
            format_table(summary, comparisons, fmt="markdown", caption=caption, reference=reference,
                         reference_label=NOTEBOOK_LABEL),
            format_table(summary, comparisons, fmt="latex", caption=caption, reference=reference,
                         reference_label=NOTEBOOK_LABEL))
