"""The regulariser ablation: UM and MM students with none / input / feature / dropout / all."""

import sys

from _common import arguments, caption_gaps, records_for, table_numbers, write_table

from mke_theory.results.reference import NOTEBOOK_ABLATION, NOTEBOOK_LABEL
from mke_theory.results.tables import format_table
from mke_theory.toy.twomoon import ABLATION_TASK

args = arguments(__doc__.splitlines()[0], "runs/twomoon")
records = records_for(args.runs, ABLATION_TASK, f"mke-theory twomoon --ablation --out {args.runs}",
                      outputs=[args.out / "ablation_table.md", args.out / "ablation_table.tex"])
if records is None:
    sys.exit(0)
# the notebook's (UM, MM) numbers, keyed like the table's rows
reference = {(m, reg): f"{pair[i]}" for reg, pair in NOTEBOOK_ABLATION.items()
             for i, m in enumerate(("um_student", "mm_student"))}
summary, comparisons, gaps = table_numbers(records, "test_accuracy", ("mm_student", "none"), ABLATION_TASK,
                                           expected=reference)
caption = (f"Regulariser ablation on TwoMoon, test accuracy (%), mean ± std over {summary['n'].max()} seeds; "
           "reference column: official notebook" + caption_gaps(gaps))
write_table(args.out, "ablation_table",
            format_table(summary, comparisons, fmt="markdown", caption=caption, reference=reference,
                         reference_label=NOTEBOOK_LABEL),
            format_table(summary, comparisons, fmt="latex", caption=caption, reference=reference,
                         reference_label=NOTEBOOK_LABEL))
