"""Builders of tiny, format-exact data for tests and smoke runs: a RAVDESS tree (mp4 + wav), a NYU
Depth V2 MATLAB v7.3 file, VGGSound/AudioSet CSVs and clips, npz bundles for the arrays task, and a toy data
set for ``cache.build`` (``testing.cache``).

Each task's ``smoke`` hook builds its data with these, so a test of every registered task needs no
hand-kept list. Some builders need the test extra (``pip install mke[test]``: scikit-image for a
real face).
"""
