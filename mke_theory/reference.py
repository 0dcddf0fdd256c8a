"""Published numbers the library's results are shown beside (no torch).

Every number here is listed in the project's fact sheet of the paper and the official notebook
(``reference/mke-paper.md``); nothing else is claimed as the paper's.  Tables show them in a
reference column (``mke_theory.tables.format_table(..., reference=...)``).
"""

from __future__ import annotations

# TwoMoon test accuracy (%) of the current official notebook (github.com/zihuixue/MKE), 10-run means (mke-paper.md §3).
NOTEBOOK_REFERENCE = {"teacher": 69.5, "um_student": 72.4, "mm_student": 77.7, "mm_supervised": 87.6}

# Regulariser ablation of the official notebook, 10 runs, (UM, MM) student test accuracy % (mke-paper.md §3).
NOTEBOOK_ABLATION = {"none": (69.8, 70.6), "input_noise": (72.4, 77.7), "feature_noise": (69.7, 70.6),
                     "dropout": (70.0, 70.65), "all": (72.65, 78.85)}

# The paper's NYU Depth V2 table, test mIoU % (Xue et al., ICCV 2021; mke-paper.md §4; its setup was not recovered).
PAPER_NYUDV2 = {"teacher": 44.15, "um_student": 46.13, "noisy_student": 47.68, "mm_student_noreg": 46.14,
                "mm_student": 48.88}
