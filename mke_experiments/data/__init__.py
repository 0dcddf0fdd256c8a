"""Readers of the real on-disk data formats and the ``prepare`` caches built from them."""
