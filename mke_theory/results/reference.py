"""Published numbers the library's results are shown beside (no torch).

Where each number comes from: the TwoMoon numbers are the printed outputs of the current official
notebook (github.com/zihuixue/MKE, the only official code), listed with the protocol in
``docs/twomoon.md``; the NYU Depth V2 numbers are the paper's table (Xue et al., *Multimodal
Knowledge Expansion*, ICCV 2021), listed in ``docs/experiments.md`` (section ``nyudv2``), whose
training setup was not published. Nothing else is claimed as the paper's. Tables show them in a
reference column (``mke_theory.results.tables.format_table(..., reference=...)``).
"""

from __future__ import annotations

# The head of a reference column names where its numbers come from (format_table(reference_label=...)):
# the TwoMoon numbers are the official notebook's, not the paper's (docs/twomoon.md says how they differ).
NOTEBOOK_LABEL = "official notebook"
PAPER_LABEL = "paper"

# TwoMoon test accuracy (%) of the current official notebook (github.com/zihuixue/MKE), 10-run means (docs/twomoon.md).
NOTEBOOK_REFERENCE = {"teacher": 69.5, "um_student": 72.4, "mm_student": 77.7, "mm_supervised": 87.6}

# Regulariser ablation of the official notebook, 10 runs, (UM, MM) student test accuracy % (docs/twomoon.md).
NOTEBOOK_ABLATION = {"none": (69.8, 70.6), "input_noise": (72.4, 77.7), "feature_noise": (69.7, 70.6),
                     "dropout": (70.0, 70.65), "all": (72.65, 78.85)}

# The paper's NYU Depth V2 table, test mIoU % (Xue et al., ICCV 2021; docs/experiments.md; setup not recovered).
PAPER_NYUDV2 = {"teacher": 44.15, "um_student": 46.13, "noisy_student": 47.68, "mm_student_noreg": 46.14,
                "mm_student": 48.88}
