"""The nouns and contracts every layer speaks, torch-free: ``errors`` (one-sentence user errors), ``checks``
(argument validation), ``split`` (``MultimodalSplit``: D_l, D_u, test, validation), ``methods`` (the method
table), ``bundle`` (the npz bundle format of your own arrays and of the check) and ``records`` (run records)."""
