"""The notebook-exact toy engine: ``ensemble`` (S small students trained at once by full-batch SGD with an
analytic backward pass), ``twomoon`` (the paper's TwoMoon table and ablation) and ``simulate`` (MKE on
synthetic data with a controlled pseudo-labeller). It keeps its own optimiser, dropout and stacking: they
reproduce the official notebook's numbers draw for draw, which the real-data loop (``mke_experiments.train``)
does not try to do."""
