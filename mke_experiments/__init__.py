"""mke_experiments: MKE on real data (mfeat, bring-your-own arrays, RAVDESS, NYU Depth V2,
VGGSound/AudioSet), built on ``mke_theory``'s core, objective, records and statistics.

Layers, bottom up (``docs/architecture.md``): ``config`` and ``metrics``; ``data`` (readers, the cache, the
row reader); ``perturbations`` and ``models``; ``train`` (``fit`` → ``train_one_epoch``, loader, optimiser,
checkpoints, runtime); ``tasks`` (one module per task, each owning its facts); ``protocol`` (the run folder,
the ``Plan``, the seed protocol, the check bundle, the public API ``fit_mke`` / ``run``); ``bench`` and ``cli``.
"""
