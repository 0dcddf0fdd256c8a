"""The run folder: where one (task, seed, config) run keeps its files (``RunFiles``), and resume.

Every file name comes from ``mke_theory.core.records.run_stem``: the records (``OUT/<stem>.json``), the
checkpoints (``OUT/checkpoints/``), the trained models with their preprocessing (``OUT/models/``), the
teacher's output on D_u (``OUT/teacher_output/``), the check bundles (``OUT/check/``) and the predictions
kept for figures (``OUT/examples/``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mke_experiments.protocol.predictor import Predictor
from mke_theory.core import disk
from mke_theory.core.records import atomic_write, read_record, run_stem, write_record
from mke_theory.core.split import MultimodalSplit


@dataclass
class RunFiles:
    """Where one (task, seed, config) run keeps its files, and resume: every file name comes from
    ``records.run_stem``. Without ``out`` nothing is written and nothing resumes."""

    out: Path | None
    task: str
    seed: int
    config_hash: str
    split_id: str
    force: bool = False
    rank: int = 0
    tensorboard: Path | None = None

    def stem(self, method: str) -> str:
        return run_stem(self.task, method, self.seed, self.config_hash)

    def checkpoint(self, method: str) -> Path | None:
        return None if self.out is None else self.out / "checkpoints" / f"{self.stem(method)}.pt"

    def identity(self, method: str) -> dict:
        """What a checkpoint of ``method`` belongs to; one of another identity is never resumed."""
        return dict(task=self.task, method=method, seed=self.seed, config_hash=self.config_hash)

    def lock(self, on_wait=None) -> disk.FolderLock:
        """The lock of this (task, seed, config) in ``out``, ``OUT/.<task>__run__seed<seed>__<config hash>.lock``
        (``disk.FolderLock``, waiting): a second run of the same identity into the same folder waits for the
        first, saying who holds it, and then resumes what the first finished. Runs of other seeds or configs
        into the same folder do not wait for each other; a killed run's lock is released by the kernel."""
        return disk.FolderLock(self.out / f".{self.stem('run')}.lock",
                               f"run of {self.task} seed {self.seed}, config {self.config_hash}", wait=True,
                               on_wait=on_wait)

    def start_fresh(self, method: str) -> None:
        """``force``: the checkpoint of a run that is redone goes before it trains (rank 0), so neither this
        run nor a later resume can pick it up; ``fit`` is told not to resume on every rank."""
        ckpt = self.checkpoint(method)
        if self.force and ckpt is not None and self.rank == 0:
            ckpt.unlink(missing_ok=True)

    def log_dir(self, method: str) -> Path | None:
        return None if self.tensorboard is None else Path(self.tensorboard) / f"{self.task}__{method}__seed{self.seed}"

    def finished(self, method: str) -> dict | None:
        """The record of ``method`` if ``out`` holds it and ``force`` is off (resume)."""
        if self.out is None or self.force:
            return None
        path = self.out / f"{self.stem(method)}.json"
        return read_record(path) if path.exists() else None

    def write(self, record: dict, keep_checkpoint: bool) -> None:
        """Write the final record (rank 0) and drop the method's checkpoint unless asked to keep it."""
        if self.out is None or self.rank != 0:
            return
        write_record(record, self.out, force=True)
        ckpt = self.checkpoint(record["method"])
        if ckpt is not None and not keep_checkpoint:
            ckpt.unlink(missing_ok=True)  # a concurrent run of the same identity may have removed it already

    def model_path(self, method: str) -> Path | None:
        return None if self.out is None else self.out / "models" / f"{self.stem(method)}.pt"

    def save_model(self, method: str, predictor: Predictor) -> None:
        """The trained network with its preprocessing (``mke-exp predict`` reads it), rank 0."""
        if self.out is None or self.rank != 0:
            return
        self.model_path(method).parent.mkdir(exist_ok=True)
        predictor.save(self.model_path(method))

    def teacher_output_dir(self) -> Path | None:
        """``OUT/teacher_output/<task>__teacher__seed<seed>__<config hash>/``: this seed's teacher output on D_u,
        one ``.npy`` per array (``SeedRun.teacher_output``) and ``arrays.txt`` (JSON: name → shape; not
        ``.json``, a name the record readers claim), written last."""
        return None if self.out is None else self.out / "teacher_output" / self.stem("teacher")

    def save_teacher_output(self, arrays: dict) -> None:
        """Write the teacher's output (rank 0), each file atomically, the list of arrays last."""
        folder = self.teacher_output_dir()
        if folder is None or self.rank != 0:
            return
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "arrays.txt").unlink(missing_ok=True)
        for name, array in arrays.items():
            atomic_write(folder / f"{name}.npy", lambda f, a=array: np.save(f, a))
        shapes = {name: list(np.shape(a)) for name, a in arrays.items()}
        atomic_write(folder / "arrays.txt", lambda f: f.write(json.dumps(shapes).encode()))

    def teacher_output(self) -> dict | None:
        """The saved teacher output, or None when there is none (or it is incomplete: it is computed again)."""
        folder = self.teacher_output_dir()
        if folder is None or self.force:
            return None
        try:
            shapes = json.loads((folder / "arrays.txt").read_text())
            arrays = {name: np.load(folder / f"{name}.npy", allow_pickle=False) for name in shapes}
        except (OSError, ValueError):
            return None
        return arrays if all(list(a.shape) == shapes[k] for k, a in arrays.items()) else None

    def check_path(self) -> Path | None:
        """``OUT/check/<task>__check__seed<seed>__<config hash>.npz``: this seed's check bundle."""
        return None if self.out is None else self.out / "check" / f"{self.stem('check')}.npz"

    def save_check(self, arrays: dict) -> None:
        """The check bundle of this seed (rank 0), rewritten every time: it must match the current teacher."""
        if self.out is None or self.rank != 0:
            return
        self.check_path().parent.mkdir(exist_ok=True)
        atomic_write(self.check_path(), lambda f: np.savez(f, **arrays))

    def save_examples(self, method: str, pred: np.ndarray, split: MultimodalSplit, n: int) -> None:
        """Predictions of the first ``n`` test samples (and, once per split, those inputs), for figures."""
        if self.out is None or self.rank != 0:
            return
        folder = self.out / "examples"
        folder.mkdir(exist_ok=True)
        atomic_write(folder / f"{self.stem(method)}.npz",
                     lambda f: np.savez_compressed(f, pred=pred, config_hash=self.config_hash, seed=self.seed))
        shown = folder / f"{self.task}__inputs__{self.split_id}.npz"
        if not shown.exists():
            atomic_write(shown, lambda f: np.savez_compressed(
                f, alpha=split.test_alpha[:n], beta=split.test_beta[:n], labels=split.test_labels[:n]))
