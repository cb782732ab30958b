"""Run directories, metric logging (TensorBoard + JSONL) and progress bars.

Every training run writes ``runs/<name>/`` (or the ``--run-dir`` given)::

    runs/<name>/
        config.json          # the resolved config
        metrics.jsonl        # one JSON object per logged step: {"step": 100, "train/loss": 0.3, ...}
        events.out.tfevents.*  # TensorBoard scalars, namespaced train/, eval/, perf/
        checkpoints/last.pt  # the latest checkpoint (seqrl.checkpoint format)

Open the logs with ``tensorboard --logdir runs``.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from seqrl.config import save_json
from seqrl.errors import UsageError
from seqrl.io import atomic_write_text

T = TypeVar("T")


@dataclass(frozen=True)
class RunDir:
    """The folder of one training run.

    ``created``: :meth:`create` made the folder itself (a fresh run in a folder that did not exist),
    so :meth:`discard_if_unused` may remove it.
    """

    path: Path
    created: bool = field(default=False, compare=False)

    @property
    def config_path(self) -> Path:
        """``config.json``: the resolved config."""
        return self.path / "config.json"

    @property
    def metrics_path(self) -> Path:
        """``metrics.jsonl``: a JSON copy of every logged scalar."""
        return self.path / "metrics.jsonl"

    @property
    def checkpoint_dir(self) -> Path:
        """``checkpoints/``."""
        return self.path / "checkpoints"

    @property
    def last_checkpoint(self) -> Path:
        """``checkpoints/last.pt``: the checkpoint that ``--resume`` continues from."""
        return self.checkpoint_dir / "last.pt"

    @classmethod
    def create(
        cls,
        *,
        name: str,
        root: str | Path = "runs",
        path: str | Path | None = None,
        resume: bool = False,
        config: Any = None,
    ) -> RunDir:
        """Create (or, with ``resume``, reopen) a run directory.

        Args:
            name: folder name under ``root`` when ``path`` is not given.
            root: parent of run folders.
            path: an explicit run directory (``--run-dir``).
            resume: continue the run in an existing directory from its last checkpoint.
            config: written to ``config.json`` on a fresh run.

        Raises:
            UsageError: resuming a run that has no checkpoint, or starting a fresh run in a
                directory that already holds one.
        """
        run = cls(Path(path) if path is not None else Path(root) / name)
        if resume:
            if not run.last_checkpoint.is_file():
                raise UsageError(
                    f"--resume: {run.path} has no checkpoint to resume (checkpoints/last.pt)"
                )
            return run
        if run.last_checkpoint.exists():
            raise UsageError(
                f"--run-dir: {run.path} already holds a run; pass --resume to continue it "
                "or choose another --run-dir / --name"
            )
        created = not run.path.exists()
        try:
            run.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"--run-dir: cannot create {run.path} ({exc.strerror})") from None
        if config is not None:
            save_json(config, run.config_path)
        return cls(run.path, created=created)

    def discard_if_unused(self) -> bool:
        """Remove the folder when :meth:`create` made it and nothing was written since but
        ``config.json`` (a run that failed before it logged or saved anything: a missing
        dataset, a bad env id). Returns whether it was removed; a folder that holds anything
        else, or that existed before, is left as it is."""
        if not self.created or not self.path.is_dir():
            return False
        left = {p.name for p in self.path.iterdir()} - {"config.json", "checkpoints"}
        if left or (self.checkpoint_dir.is_dir() and any(self.checkpoint_dir.iterdir())):
            return False
        if self.checkpoint_dir.is_dir():
            self.checkpoint_dir.rmdir()
        self.config_path.unlink(missing_ok=True)
        self.path.rmdir()
        return True


class Logger:
    """Logs scalars to TensorBoard and to ``metrics.jsonl`` in the run directory.

    Names are namespaced by the caller (``train/loss``, ``eval/return``, ``perf/steps_per_s``).
    On resume from step ``s``, JSONL lines and TensorBoard events after ``s`` are dropped so the
    logs read as one uninterrupted run.
    """

    def __init__(
        self, run: RunDir, resume_step: int | None = None, tensorboard: bool = True
    ) -> None:
        self.run = run
        self._writer = None
        if resume_step is not None and run.metrics_path.exists():
            kept = [
                line
                for line in run.metrics_path.read_text().splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= resume_step
            ]
            atomic_write_text(run.metrics_path, "".join(line + "\n" for line in kept))
        self._jsonl = open(run.metrics_path, "a", encoding="utf-8")  # noqa: SIM115
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:  # e.g. a bare GPU machine: keep training, JSONL only
                print(
                    f"seqrl: no TensorBoard logs ({exc}); metrics go to {run.metrics_path}",
                    file=sys.stderr,
                )
            else:
                self._writer = SummaryWriter(str(run.path), purge_step=resume_step)

    def log(self, step: int, scalars: Mapping[str, float]) -> None:
        """Record ``scalars`` at ``step`` (non-finite values are written as null in JSONL)."""
        record: dict[str, Any] = {"step": int(step), "time": round(time.time(), 3)}
        for key, value in scalars.items():
            value = float(value)
            record[key] = value if math.isfinite(value) else None
            if self._writer is not None:
                self._writer.add_scalar(key, value, step)
        self._jsonl.write(json.dumps(record) + "\n")
        self._jsonl.flush()

    def add_video(self, tag: str, frames: Any, step: int, fps: int = 4) -> None:
        """Log a ``(N, T, C, H, W)`` uint8 video tensor to TensorBoard (no-op without it)."""
        if self._writer is not None:
            self._writer.add_video(tag, frames, step, fps=fps)

    def add_images(self, tag: str, images: Any, step: int) -> None:
        """Log a ``(N, C, H, W)`` image batch to TensorBoard as a grid."""
        if self._writer is not None:
            self._writer.add_images(tag, images, step)

    def flush(self) -> None:
        """Flush both outputs."""
        self._jsonl.flush()
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        """Flush and close both outputs."""
        self._jsonl.close()
        if self._writer is not None:
            self._writer.close()

    def __enter__(self) -> Logger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress(
    iterable: Iterable[T] | None = None,
    *,
    total: int | None = None,
    initial: int = 0,
    desc: str = "",
    quiet: bool = False,
    unit: str = "it",
) -> Iterator[T] | Any:
    """A tqdm progress bar (steps, rate, postfix for the latest loss); silent with ``quiet``."""
    from tqdm.auto import tqdm

    return tqdm(
        iterable,
        total=total,
        initial=initial,
        desc=desc,
        disable=quiet,
        unit=unit,
        dynamic_ncols=True,
        leave=False,
    )
