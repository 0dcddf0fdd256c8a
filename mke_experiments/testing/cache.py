"""A toy data set for ``cache.build``: item ``i`` decodes to ``x = [i, i + 0.5, -i]`` (float16) and the name
``item<i>``; every item ``i % 7 == 3`` is unreadable (skipped with its reason) and every ``i % 11 == 5``
decodes to a NaN (dropped by ``build``'s finite check). ``build_toy`` runs it, optionally slowly, failing at
one item or ending its worker process there. An item's content digest is that of its number and its edit
(``edits``: item → a number added to its ``x[0]``, as a source file rewritten with other bytes would be, or
``"gone"``: the item became unreadable).
"""

from __future__ import annotations

import functools
import hashlib
import os
import time

import numpy as np

from mke_experiments.data import cache
from mke_theory.core.errors import MKEError


class ToyError(MKEError):
    """The toy reader's error."""


SPEC = cache.CacheSpec(dataset="Toy", format="mke-toy-cache", version=3, arrays=lambda manifest: ("x", "names"),
                       small=frozenset({"names"}), error=ToyError, hint="run mke-exp prepare toy --raw DIR --out DIR")
COLUMNS = {"x": cache.Column((3,), "<f2"), "names": cache.Column((), "<U12")}


def hash_item(item: int, edits: dict | None = None) -> str:
    """Item ``item``'s content digest: of its number and its edit (see the module docstring)."""
    edit = (edits or {}).get(item, 0)
    return hashlib.sha256(f"toy item {item} edit {edit}".encode()).hexdigest()[:cache.HEX]


def decode(item: int, seconds: float = 0.0, fail_at: int | None = None, die_at: int | None = None,
           edits: dict | None = None) -> tuple[dict | None, dict, str]:
    """Item ``item``'s rows (see the module docstring), after sleeping ``seconds``; ``fail_at``: raise there;
    ``die_at``: end the process there, as the kernel's out-of-memory killer would (only in a pool worker)."""
    time.sleep(seconds)
    digest = hash_item(item, edits)
    if item == fail_at:
        raise ToyError(f"toy source is broken at item {item}")
    if item == die_at:
        os._exit(1)
    if item % 7 == 3 or (edits or {}).get(item) == "gone":
        return None, {"skipped": f"item {item} is unreadable"}, digest
    x = np.array([item + (edits or {}).get(item, 0), item + 0.5, np.nan if item % 11 == 5 else -item])
    return {"x": x, "names": f"item{item}"}, ({"even": True} if item % 2 == 0 else {}), digest


def summarize(valid: np.ndarray, notes: list[dict]) -> dict:
    skipped = [{"item": i, "reason": note["skipped"]} for i, note in enumerate(notes) if "skipped" in note]
    if not valid.any():
        raise ToyError("none of the toy items could be read")
    return {"counts": {"clips": int(valid.sum()), "skipped": len(skipped),
                       "even": sum(bool(note.get("even")) for note in notes)}, "skipped": skipped}


def build_toy(out_dir, n: int = 40, seconds: float = 0.0, params: dict | None = None, fingerprint: str = "toy-1",
              fail_at: int | None = None, die_at: int | None = None, edits: dict | None = None, **options) -> dict:
    """``cache.build`` of items ``0..n-1`` into ``out_dir``; ``options`` go to ``build`` (workers, shard_size, …)."""
    decoder = functools.partial(decode, seconds=seconds, fail_at=fail_at, die_at=die_at, edits=edits)
    return cache.build(SPEC, out_dir, list(range(n)), decoder, COLUMNS, params or {"scale": 1}, fingerprint,
                       summarize, hash_item=functools.partial(hash_item, edits=edits), **options)


def reuse_toy(out_dir, n: int = 40, params: dict | None = None, fingerprint: str = "toy-1",
              edits: dict | None = None, **options) -> dict | None:
    """``cache.reuse`` of the toy cache in ``out_dir`` (items ``0..n-1``, ``edits`` as for ``build_toy``)."""
    return cache.reuse(SPEC, out_dir, params or {"scale": 1}, fingerprint, list(range(n)),
                       functools.partial(hash_item, edits=edits), **options)

