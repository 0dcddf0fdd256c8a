"""Config files (``--config FILE.yaml``) and the presets shipped with the package (``--config nyudv2-paper``).

A config file is YAML holding any subset of an ``ExperimentConfig``'s groups (``data``, ``model``, ``train``,
``mke``, ``prepare``) and ``name``; it may name its ``task`` (a preset does), and say what it is
(``description``, ``source``, ``expected``, ``cost``: read by ``mke-exp list`` and ``mke-exp config``,
never configuration) and which settings the user must fill in (``fill_in``: key -> why; left at the default, the
run goes on with a ``ConfigWarning``). Each setting becomes one ``--set`` item (``config.FileSetting``) put
before the command line's own, so ``--set`` wins over the file, the file over the task's defaults, and the
file's settings go through the ``--set`` machinery: the same checks, and the same one-sentence errors, with
the file named. ``mke-exp config`` prints a resolved config back as a file (``format_config``): every field,
so that feeding it back gives the same config and hash.

The presets live in ``mke_experiments/configs/`` (package data, so ``pip install`` ships them; the repository's
top-level ``configs/README.md`` points there).
"""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

from mke_experiments.config import GROUPS, FileSetting
from mke_theory.core.errors import MKEError

PRESET_DIR = Path(__file__).parent / "configs"
ABOUT_KEYS = ("description", "source", "expected", "cost", "fill_in")  # what a file says about itself, not
# configuration
FILE_KEYS = ("task", "name", *GROUPS, *ABOUT_KEYS)  # every top-level key a config file may hold


def presets() -> dict[str, Path]:
    """Preset name -> its file, for every YAML file shipped in ``PRESET_DIR``."""
    return {p.stem: p for p in sorted(PRESET_DIR.glob("*.yaml"))}


def find_config(spec: str) -> Path:
    """The file ``--config spec`` names: an existing file, else a preset of that name; else an ``MKEError``."""
    path = Path(spec)
    if path.is_file():
        return path
    if path.exists():
        raise MKEError(f"--config {spec} is a folder; give a YAML file or a preset ({', '.join(presets())})")
    if spec in presets():
        return presets()[spec]
    raise MKEError(f"--config {spec}: no such file, and no preset of that name; presets: {', '.join(presets())} "
                   "(mke-exp list describes them)")


def read_config(spec: str) -> tuple[Path, dict]:
    """``(path, mapping)`` of the config file or preset ``spec``; every way a file can fail to be a mapping of
    YAML (unreadable, not UTF-8, tab-indented, bad syntax, a repeated key, empty, a list) is one sentence."""
    import yaml

    path = find_config(spec)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as e:
        raise MKEError(f"{path} could not be read ({e.strerror or e})") from None
    except UnicodeDecodeError:
        raise MKEError(f"{path} is not a text file (not UTF-8); a config file is YAML text") from None
    for number, line in enumerate(text.splitlines(), 1):
        indent = line[: len(line) - len(line.lstrip(" \t"))]
        if "\t" in indent and line.strip() and not line.lstrip().startswith("#"):
            raise MKEError(f"{path} line {number} is indented with a tab; YAML indents with spaces only")
    try:
        data = yaml.load(text, Loader=_loader())  # a SafeLoader: plain data only
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise MKEError(f"{path} is not valid YAML: {problem}{where}") from None
    if data is None:
        raise MKEError(f"{path} is empty; a config file holds groups such as train: with their settings")
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"a single value ({data!r})"
        raise MKEError(f"{path} holds {kind}, not a mapping of config groups (e.g. train:, then epochs: 5 "
                       "indented below it)")
    return path, data


def config_settings(spec: str, task: str) -> tuple[FileSetting, ...]:
    """The settings of config file (or preset) ``spec`` for ``task`` as ``--set`` items, in file order, to be
    put before the command line's ``--set`` items. A file naming another task is an ``MKEError``."""
    path, data = read_config(spec)
    unknown = [str(k) for k in data if k not in FILE_KEYS]
    if unknown:
        raise MKEError(f"{path}: unknown key {unknown[0]!r}; a config file holds {', '.join(FILE_KEYS)}")
    file_task = data.get("task")
    if file_task is not None and file_task != task:
        raise MKEError(f"{path} is a config of task {file_task}, not {task}: use it with that task "
                       f"(mke-exp run {file_task} --config {spec})")
    fill_in = data.get("fill_in") or {}
    if not isinstance(fill_in, dict):
        raise MKEError(f"{path}: fill_in maps a key to why it must be set, e.g. model.weights: ImageNet weights")
    items = []
    for key, value in data.items():
        if key in ("task", *ABOUT_KEYS):
            continue
        items += [FileSetting(k, v, str(path), fill_in) for k, v in _flatten(str(key), value)]
    if not items and fill_in:  # a file of only fill-ins still says what is missing
        items.append(FileSetting("name", data.get("name", ""), str(path), fill_in))
    return tuple(items)


def _flatten(prefix: str, value):
    """``("train", {"lr": 0.1})`` -> ``[("train.lr", 0.1)]``: a mapping below a group opens it; any other value
    ends the key (a value where a group belongs is then named by ``config._set``)."""
    if not isinstance(value, dict):
        return [(prefix, value)]
    return [pair for key, sub in value.items() for pair in _flatten(f"{prefix}.{key}", sub)]


def describe(spec: str) -> dict:
    """What a config file says about itself: ``description``, ``task``, ``source``, ``expected``, ``fill_in``
    (each None when absent), and its ``path``."""
    path, data = read_config(spec)
    return dict({key: data.get(key) for key in ("task", *ABOUT_KEYS)}, path=path)


def has_numbers(expected) -> bool:
    """Whether a preset's ``expected`` holds published numbers (a mapping with numbers), not a note."""
    if isinstance(expected, dict):
        return any(has_numbers(v) for v in expected.values())
    return isinstance(expected, (int, float)) and not isinstance(expected, bool)


def format_expected(expected) -> str:
    """A preset's ``expected`` in one line: ``test_miou: teacher 44.15, mm_student 48.88`` (a note as it is)."""
    if not isinstance(expected, dict):
        return str(expected)
    return ", ".join(f"{key}: {format_expected(value)}" if isinstance(value, dict) else f"{key} {value}"
                     for key, value in expected.items())


def format_config(cfg, ignores=(), header: str = "") -> str:
    """``cfg`` (an ``ExperimentConfig``) as a config file: every field, in declaration order, a key the task
    ignores commented out (setting it is an error); ``header`` goes first as comment lines."""
    lines = [f"# {line}" if line else "#" for part in header.splitlines()
             for line in (textwrap.wrap(part, 116) or [""])]
    lines.append(f"task: {_scalar(cfg.task)}")
    for spec in dataclasses.fields(cfg):
        value = getattr(cfg, spec.name)
        if spec.name == "task" or value is None:
            continue
        if not dataclasses.is_dataclass(value):
            lines.append(f"{spec.name}: {_scalar(value)}")
            continue
        lines.append(f"{spec.name}:")
        for field in dataclasses.fields(value):
            text = f"{field.name}: {_scalar(getattr(value, field.name))}"
            ignored = f"{spec.name}.{field.name}" in ignores
            lines.append(f"  # {text}  (not used by task {cfg.task})" if ignored else f"  {text}")
    return "\n".join(lines) + "\n"


def _scalar(value) -> str:
    """``value`` as one line of YAML that reads back as the same value (``--set`` text for tuples)."""
    import yaml

    text = yaml.safe_dump(list(value) if isinstance(value, tuple) else value, default_flow_style=True,
                          width=10**6).strip()
    return text[: -len("\n...")] if text.endswith("\n...") else text


def _unique_key_loader():
    import yaml

    class Loader(yaml.SafeLoader):
        """SafeLoader refusing a key given twice in one mapping (PyYAML keeps the last silently: a typo'd
        second ``lr:`` would win unseen)."""

    def construct_mapping(loader, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            if not isinstance(key, (str, int, float, bool, type(None))):
                raise yaml.constructor.ConstructorError(None, None, f"a key must be a name, not {key!r}",
                                                        key_node.start_mark)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"the key {key!r} is given twice",
                                                        key_node.start_mark)
            seen.add(key)
        return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    return Loader


_LOADER = []  # the loader class, built on first use: yaml is imported only when a config file is read


def _loader():
    if not _LOADER:
        _LOADER.append(_unique_key_loader())
    return _LOADER[0]
