"""Robustness at test time (``mke-exp robustness RUN_DIR``): every saved model of a run on the test set with
β, then α, removed or noised.

Where the models and the data come from: a run with ``--out`` on vector inputs (mfeat, arrays) saves each
method and seed as a ``Predictor`` (``RUN_DIR/models/<stem>.pt``, the stem of its record ``RUN_DIR/<stem>.json``).
The test set is the run's own: a task that brings its data (mfeat) rebuilds its split from the record's
data config (its ``split_id`` must match the record's); a task that needs ``--data`` (arrays) reads the raw
``test_alpha``, ``test_beta``, ``test_labels`` of the npz given (the run's bundle holds them) and standardises
them with the statistics the ``Predictor`` carries (``Predictor.transform``: the computation the run's split
made, to the bit). The networks then run on the standardised arrays, as in training: the clean accuracy is
the record's ``test_accuracy`` exactly (``evaluate`` checks it and says where it is not).

What "removed" means. Modality dropout (``model.modality_dropout``) zeroes, in training, the *features* the
β (or α) encoder computes, not its inputs; an input of zeros is something else, and in raw units (mfeat's
Fourier magnitudes are all positive) far outside anything the model saw. Two conditions are measured:

- ``removed`` — the modality's input replaced by its training mean: after the run's standardisation that
  is the vector 0, the one input that carries no information about the sample and sits in the middle of
  the training distribution (inputs were standardised with the training statistics: α of D_l ∪ D_u, β of
  D_u). A run without standardisation (arrays with ``data.standardize=false``) gets the mean of the
  bundle's training arrays, or of the test arrays when the npz holds none (said in ``notes``).
- ``zeroed`` — the modality's encoder output set to 0 (a forward hook on ``encoder_beta``/``encoder_alpha``
  of the library's ``Student``, ``encoder`` of a ``Teacher``): exactly what modality dropout trains for.
  A network of your own without those attributes gets NaN here.

Noise: x + σ · s · ε with ε ~ N(0, 1) per feature and sample, s the feature's training std in the model's
input units (1 after standardisation), at each σ of ``levels``; one draw of ε per modality (seeded by
``noise_seed``), shared by every model and scaled by σ, so curves of different models are paired and σ = 0
is the clean input to the bit. A unimodal model (teacher, UM students) never reads β: its β rows equal its
clean accuracy, a reference line.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mke_experiments.protocol.predictor import Predictor
from mke_experiments.train import predict
from mke_theory.core.errors import MKEError
from mke_theory.core.methods import METHODS
from mke_theory.core.records import read_record

LEVELS = (0.0, 0.25, 0.5, 1.0, 2.0)
MODALITIES = ("beta", "alpha")


@dataclass
class SavedModel:
    """One model file of a run with what it belongs to."""

    path: Path
    predictor: Predictor
    task: str
    method: str
    seed: int
    config_hash: str
    record: dict | None  # its run record (None: the folder holds none; then no clean-accuracy check)

    @property
    def multimodal(self) -> bool:
        return self.predictor.modalities == 2


@dataclass
class TestSet:
    """The test set in the model's input units (standardised where the run standardised), as float32."""

    alpha: np.ndarray
    beta: np.ndarray
    labels: np.ndarray  # (n,) class indices 0 … K−1
    mean: dict  # modality -> (d,) its training mean in input units: what ``removed`` puts in
    std: dict  # modality -> (d,) its training std in input units: the unit of the noise
    note: str = ""  # where the statistics came from when not from the run's standardisation


def saved_models(run_dir, task: str | None = None) -> list[SavedModel]:
    """Every ``RUN_DIR/models/*.pt`` with its record, in table order (method, then seed); one task only."""
    run_dir = Path(run_dir)
    files = sorted((run_dir / "models").glob("*.pt"))
    if not files:
        raise MKEError(f"{run_dir} holds no saved models (models/*.pt); models are saved by `mke-exp run TASK "
                       f"--out {run_dir}` for tasks with vector inputs (mfeat, arrays)")
    models = []
    for path in files:
        p = Predictor.load(path)
        info = p.info
        if not {"task", "method", "seed", "config_hash"} <= set(info) or info["method"] not in METHODS:
            raise MKEError(f"{path}: a model file without its run's task, method, seed and config hash")
        # the model file and its record share a stem; the model's info names the task that trained it, the
        # record's ``task`` the run's name (``mke-exp run arrays --name NAME``)
        record_path = run_dir / f"{path.stem}.json"
        record = read_record(record_path) if record_path.exists() else None
        models.append(SavedModel(path, p, info["task"], info["method"], int(info["seed"]), info["config_hash"], record))
    tasks = sorted({m.task for m in models})
    if task is not None:
        if task not in tasks:
            raise MKEError(f"{run_dir} holds no models of task {task!r}; its tasks: {', '.join(tasks)}")
        models = [m for m in models if m.task == task]
    elif len(tasks) > 1:
        raise MKEError(f"{run_dir} holds models of the tasks {', '.join(tasks)}; pass --task NAME")
    if not any(m.multimodal for m in models):
        raise MKEError(f"{run_dir} holds no multimodal model (only {', '.join(sorted({m.method for m in models}))}); "
                       "train one, e.g. --methods teacher,mm_student")
    order = list(METHODS)
    return sorted(models, key=lambda m: (order.index(m.method), m.config_hash, m.seed))


def _data_config(default, data: dict):
    """The task's data config from a record's ``config["data"]`` (fields the record omits keep their defaults)."""
    if not dataclasses.is_dataclass(default):
        return data
    fields = {f.name for f in dataclasses.fields(default)}
    unknown = sorted(set(data) - fields)
    if unknown:
        raise MKEError(f"the record's data config has the key(s) {', '.join(unknown)}, which this version's "
                       f"{type(default).__name__} does not know")
    values = {k: tuple(v) if isinstance(v, list) and isinstance(getattr(default, k), tuple) else v
              for k, v in data.items()}
    return dataclasses.replace(default, **values)


def _stats(train: dict, standardised: bool) -> tuple[dict, dict]:
    """(mean, std) per modality in input units: 0 and 1 after the run's standardisation, else the training
    arrays' own (std 1 where a feature is constant)."""
    mean, std = {}, {}
    for name, x in train.items():
        if standardised:
            mean[name], std[name] = np.zeros(x.shape[1]), np.ones(x.shape[1])
        else:
            x = np.asarray(x, dtype=np.float64)
            s = x.std(axis=0)
            mean[name], std[name] = x.mean(axis=0), np.where(s > 0, s, 1.0)
    return mean, std


def split_test_set(model: SavedModel) -> TestSet:
    """The test set of a task that brings its data (mfeat), rebuilt from the record's data config."""
    from mke_experiments.tasks import get_task

    if model.record is None:
        raise MKEError(f"{model.path}: its run record ({model.path.stem}.json) is not in the run folder; "
                       "the test set is rebuilt from it")
    task = get_task(model.task)
    split = task.load(_data_config(task.default_config.data, model.record["config"].get("data") or {}), None)
    if model.record.get("split_id") not in (None, split.split_id):
        raise MKEError(f"the {model.task} data rebuilt from {model.path.stem}.json differ from the run's "
                       f"(split {split.split_id}, the record says {model.record['split_id']}): the data or "
                       "the code that splits them changed since the run")
    standardised = "standardization" in split.meta
    train = dict(alpha=np.concatenate([split.labeled_alpha, split.unlabeled_alpha]), beta=split.unlabeled_beta)
    mean, std = _stats(train, standardised)
    return TestSet(np.asarray(split.test_alpha, np.float32), np.asarray(split.test_beta, np.float32),
                   np.asarray(split.test_labels, np.int64), mean, std)


def npz_test_set(model: SavedModel, arrays: dict, source: str) -> TestSet:
    """The raw ``test_alpha``, ``test_beta``, ``test_labels`` of an npz, in the model's input units."""
    missing = [k for k in ("test_alpha", "test_beta", "test_labels") if k not in arrays]
    if missing:
        raise MKEError(f"{source} misses the key(s) {', '.join(missing)}; give the run's bundle or an npz with "
                       "the raw test_alpha, test_beta and test_labels")
    p = model.predictor
    alpha, beta = (t.numpy() for t in Predictor(p.model, 2, p.standardization).transform(
        arrays["test_alpha"], arrays["test_beta"]))
    labels = np.asarray(arrays["test_labels"])
    if p.classes is None:
        if labels.dtype.kind not in "iu":
            raise MKEError(f"{source}: test_labels must be class indices for this run (it kept no label values)")
        index = labels.astype(np.int64)
    else:
        lookup = {c: i for i, c in enumerate(np.asarray(p.classes).tolist())}
        unknown = [v for v in labels.tolist() if v not in lookup]
        if unknown:
            raise MKEError(f"{source}: test_labels holds {unknown[0]!r}, not a class of the run "
                           f"({', '.join(map(str, list(lookup)[:10]))})")
        index = np.array([lookup[v] for v in labels.tolist()], dtype=np.int64)
    if p.standardization is not None:
        mean, std = _stats(dict(alpha=alpha, beta=beta), True)
        note = ""
    elif "unlabeled_beta" in arrays and "unlabeled_alpha" in arrays:
        parts = [arrays[k] for k in ("labeled_alpha", "unlabeled_alpha") if k in arrays and len(arrays[k])]
        mean, std = _stats(dict(alpha=np.concatenate(parts), beta=arrays["unlabeled_beta"]), False)
        note = f"the run did not standardise: training mean and std from {source}'s D_l ∪ D_u (α) and D_u (β)"
    else:
        mean, std = _stats(dict(alpha=alpha, beta=beta), False)
        note = (f"the run did not standardise and {source} holds no training arrays: the mean and std of the "
                "test arrays stand in for the training ones")
    return TestSet(alpha, beta, index, mean, std, note)


@contextlib.contextmanager
def features_zeroed(model: torch.nn.Module, modality: str, multimodal: bool):
    """Inside: the encoder of ``modality`` outputs zeros (what modality dropout does in training). Yields
    whether there was such an encoder (a unimodal model has none for β: it never reads β)."""
    name = ("encoder_alpha" if modality == "alpha" else "encoder_beta") if multimodal else (
        "encoder" if modality == "alpha" else None)
    encoder = getattr(model, name, None) if name else None
    if not isinstance(encoder, torch.nn.Module):
        yield False
        return
    handle = encoder.register_forward_hook(lambda module, inputs, output: torch.zeros_like(output))
    try:
        yield True
    finally:
        handle.remove()


def _accuracy(model: SavedModel, alpha: np.ndarray, beta: np.ndarray, labels: np.ndarray) -> float:
    inputs = tuple(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)) for x in (alpha, beta))
    pred = predict(model.predictor.model, inputs[: model.predictor.modalities], "cpu").numpy()
    return float((pred == labels).mean())


def noise_draws(test: TestSet, noise_seed: int) -> dict:
    """ε per modality, (n, d) standard normal, one generator each (seeded by (noise_seed, 0 for α / 1 for β))."""
    return {name: np.random.default_rng([noise_seed, i]).standard_normal(getattr(test, name).shape)
            for i, name in enumerate(("alpha", "beta"))}


def evaluate_model(model: SavedModel, test: TestSet, levels=LEVELS, noise_seed: int = 0) -> list[dict]:
    """The accuracy rows of one model: per modality, each noise level, removed and zeroed."""
    levels = sorted({0.0, *map(float, levels)})
    eps = noise_draws(test, noise_seed)
    clean = dict(alpha=test.alpha, beta=test.beta)
    base = dict(task=model.task, method=model.method, seed=model.seed, config_hash=model.config_hash,
                multimodal=model.multimodal)
    rows = []
    for modality in MODALITIES:
        x = np.asarray(clean[modality], dtype=np.float64)
        for sigma in levels:
            noisy = dict(clean, **{modality: (x + sigma * test.std[modality] * eps[modality]).astype(np.float32)})
            rows.append(dict(base, modality=modality, condition="noise", level=sigma,
                             accuracy=_accuracy(model, noisy["alpha"], noisy["beta"], test.labels)))
        mean = np.broadcast_to(test.mean[modality], x.shape).astype(np.float32)
        removed = dict(clean, **{modality: mean})
        rows.append(dict(base, modality=modality, condition="removed", level=np.nan,
                         accuracy=_accuracy(model, removed["alpha"], removed["beta"], test.labels)))
        with features_zeroed(model.predictor.model, modality, model.multimodal) as hooked:
            reads = model.multimodal or modality == "alpha"
            acc = _accuracy(model, test.alpha, test.beta, test.labels) if hooked or not reads else np.nan
        rows.append(dict(base, modality=modality, condition="zeroed", level=np.nan, accuracy=acc))
    return rows


@dataclass
class Robustness:
    """What ``evaluate`` measured: the rows (a DataFrame, see ``mke_theory.results.robustness``) and notes."""

    frame: object
    notes: list
    levels: tuple


def evaluate(run_dir, data=None, levels=LEVELS, noise_seed: int = 0, task: str | None = None) -> Robustness:
    """Every saved model of ``run_dir`` under every condition (``evaluate_model``), as one DataFrame with a
    ``label`` per method (the method, with its config hash where the folder holds several configs of it).

    ``data``: an npz path for tasks that need ``--data`` (arrays); refused for tasks that bring their own.
    The notes say where a clean accuracy differs from its record's ``test_accuracy`` (other data than the
    run's test set) or where the noise statistics came from."""
    import pandas as pd

    from mke_experiments.tasks import get_task
    from mke_theory.core.bundle import load_npz

    levels = tuple(sorted({0.0, *map(float, levels)}))
    if any(not np.isfinite(s) or s < 0 for s in levels):
        raise MKEError(f"noise levels must be finite and >= 0, got {', '.join(map(str, levels))}")
    models = saved_models(run_dir, task)
    spec = get_task(models[0].task)
    arrays = None
    if spec.needs_data:
        if data is None:
            raise MKEError(f"task {spec.name} needs the test data: pass --data with the run's bundle (or an npz "
                           "holding its raw test_alpha, test_beta and test_labels)")
        arrays = load_npz(data, what=".npz file for --data")
    elif data is not None:
        raise MKEError(f"task {spec.name} rebuilds its test set from the run's records; drop --data {data}")
    notes, rows, tests = [], [], {}
    for model in models:
        key = model.config_hash
        if key not in tests:
            tests[key] = npz_test_set(model, arrays, str(data)) if arrays is not None else split_test_set(model)
            if tests[key].note and tests[key].note not in notes:
                notes.append(tests[key].note)
        model_rows = evaluate_model(model, tests[key], levels, noise_seed)
        rows += model_rows
        recorded = (model.record or {}).get("metrics", {}).get("test_accuracy")
        clean = model_rows[0]["accuracy"]
        if recorded is not None and clean != recorded:
            notes.append(f"{model.method} seed {model.seed}: clean accuracy {100 * clean:.2f} % here, "
                         f"{100 * recorded:.2f} % in its record (other test data, or a run on another device)")
    frame = pd.DataFrame(rows)
    several = frame.groupby("method")["config_hash"].nunique()
    frame["label"] = [m if several[m] == 1 else f"{m} [{h[:6]}]" for m, h in zip(frame["method"], frame["config_hash"])]
    return Robustness(frame, notes, levels)
