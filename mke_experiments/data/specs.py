"""Which prepared cache a folder holds: the spec of every cache format ``mke-exp prepare`` writes, found from the
folder's manifest (``mke-exp verify CACHE`` needs no task name). Above the readers, so ``cache`` needs none of them."""

from __future__ import annotations

from pathlib import Path

from mke_experiments.data import avclips, nyudv2, ravdess
from mke_experiments.data.cache import CacheSpec, _read_json
from mke_theory.core.errors import MKEError


def find_spec(out_dir) -> CacheSpec:
    """The spec of the cache in ``out_dir``, from its manifest's ``format`` (RAVDESS, NYU Depth V2, a clip cache
    such as VGGSound or AudioSet); ``MKEError`` naming the manifest when it names none of them."""
    out_dir = Path(out_dir)
    path = out_dir / ravdess.MANIFEST_NAME
    if not out_dir.is_dir():
        raise MKEError(f"cache folder {out_dir} does not exist; pass the --out folder of mke-exp prepare.")
    manifest = _read_json(path)
    if not path.is_file() or not isinstance(manifest, dict):
        raise MKEError(f"cache manifest {path} is missing or not JSON; pass the --out folder of mke-exp prepare.")
    form = manifest.get("format")
    for spec in (ravdess.CACHE_SPEC, nyudv2.CACHE_SPEC):
        if form == spec.format:
            return spec
    if isinstance(form, str) and form.startswith("mke-") and form.endswith("-avclips-cache"):
        return avclips.cache_spec(form[len("mke-"):-len("-avclips-cache")])
    raise MKEError(f"cache manifest {path} has format {form!r}, not one of a cache mke-exp prepare writes; "
                   "pass the --out folder of mke-exp prepare.")
