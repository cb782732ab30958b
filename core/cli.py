"""The ``seqrl`` command line.

One command with subcommands grouped by workflow::

    seqrl demo                 # the built-in end-to-end job
    seqrl train <algo> ...     # dt, twm, iris, ...
    seqrl eval POLICY ...      # evaluate a policy through the shared evaluator
    seqrl rollout POLICY ...   # record what a policy does
    seqrl collect ...          # collect a dataset
    seqrl datasets list|info   # inspect datasets

Each part of seqrl contributes its subcommands from a module ``seqrl.<part>.cli`` that defines
``register(registry)``. Errors on bad input are printed as one line (``seqrl: error: ...``) and
give a non-zero exit code (2 for usage errors).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TypeVar

from seqrl import __version__
from seqrl.checkpoint import load_checkpoint
from seqrl.config import apply_overrides, config_from_args, from_dict, save_json
from seqrl.errors import SeqrlError, UsageError
from seqrl.run import RunDir

C = TypeVar("C")

# Modules that contribute subcommands, in the order their commands appear in --help.
COMMAND_MODULES = (
    "seqrl.agents.cli",
    "seqrl.world_models.cli",
    "seqrl.envs.cli",
    "seqrl.data.cli",
)


class Registry:
    """Where command modules add their subcommands."""

    def __init__(
        self, subparsers: argparse._SubParsersAction, train: argparse._SubParsersAction
    ) -> None:
        self._subparsers = subparsers
        self._train = train

    def command(
        self, name: str, help: str, description: str | None = None
    ) -> argparse.ArgumentParser:
        """Add ``seqrl NAME``; set its handler with ``parser.set_defaults(handler=fn)``."""
        return self._subparsers.add_parser(
            name, help=help, description=description or help, formatter_class=HelpFormatter
        )

    def train_algo(
        self, name: str, help: str, description: str | None = None
    ) -> argparse.ArgumentParser:
        """Add ``seqrl train NAME`` with the run options every training command shares
        (``--runs``, ``--name``, ``--run-dir``, ``--resume``, ``--quiet``; read them with
        :func:`train_run`); set its handler with ``parser.set_defaults(handler=fn)``."""
        parser = self._train.add_parser(
            name, help=help, description=description or help, formatter_class=HelpFormatter
        )
        parser.add_argument("--runs", default="runs", help="parent folder of run directories")
        parser.add_argument("--name", default=None, help="run name (default: from the config)")
        parser.add_argument("--run-dir", default=None, help="explicit run directory")
        parser.add_argument(
            "--resume",
            action="store_true",
            help="continue the run in --run-dir from its last checkpoint",
        )
        parser.add_argument("--quiet", action="store_true", help="no progress bar")
        return parser


def train_run(
    args: argparse.Namespace,
    *,
    algo: str,
    config_class: type[C],
    presets: Mapping[str, Callable[[], C]],
    default_preset: str,
    run_name: Callable[[C], str],
    budget_key: str,
    check: Callable[[C], None] | None = None,
) -> tuple[C, RunDir]:
    """The config and run directory of a ``seqrl train ALGO`` call.

    A new run takes the preset and ``--a.b`` flags and is named ``--name`` or
    ``time.strftime(run_name(cfg))``. ``--resume`` reads the config from the checkpoint in
    ``--run-dir``; only the training budget (``--<budget_key>``) may be raised then. ``check``
    validates a new run's config before its directory is created.
    """
    if args.resume:
        if not args.run_dir:
            raise UsageError("--resume needs --run-dir: the run to continue")
        run = RunDir.create(name="", path=args.run_dir, root=args.runs, resume=True)
        ckpt = load_checkpoint(run.last_checkpoint, algo=algo)
        cfg = from_dict(config_class, ckpt.config, where=str(run.config_path))
        budget = getattr(args, f"config:{budget_key}", None)
        if budget is not None:
            cfg = apply_overrides(cfg, {budget_key: budget})
            save_json(cfg, run.config_path)  # config.json says what the run now trains for
        return cfg, run
    cfg = config_from_args(config_class, args, presets, default_preset)
    if check is not None:
        check(cfg)
    name = args.name or time.strftime(run_name(cfg))
    return cfg, RunDir.create(name=name, root=args.runs, path=args.run_dir, config=cfg)


@contextmanager
def discard_unused_run(run: RunDir) -> Iterator[RunDir]:
    """Run the body with ``run``; if it fails before writing anything but ``config.json`` into a
    folder that :func:`train_run` has just created, remove that folder
    (:meth:`RunDir.discard_if_unused`), so a bad dataset or env leaves no empty run behind."""
    try:
        yield run
    except BaseException:
        run.discard_if_unused()
        raise


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows defaults (once) and keeps the description's line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        help_text = action.help or ""
        if "(default:" in help_text or action.default in (None, False, argparse.SUPPRESS):
            return help_text
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    """The full ``seqrl`` parser with every available subcommand."""
    parser = argparse.ArgumentParser(
        prog="seqrl",
        description="Transformer-based reinforcement learning: Decision Transformer and "
        "transformer world models on one backbone, one data layer and one evaluator.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"seqrl {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    train = subparsers.add_parser(
        "train",
        help="train an agent or world model",
        description="Train an agent or world model.",
        formatter_class=HelpFormatter,
    )
    train_sub = train.add_subparsers(dest="algo", metavar="ALGO", required=True)
    registry = Registry(subparsers, train_sub)
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:  # this part has no commands (yet)
                continue
            raise
        module.register(registry)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI on ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    try:
        try:
            args = parser.parse_args(list(argv) if argv is not None else None)
        except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
            return int(exc.code or 0)
        code = int(args.handler(args) or 0)
        sys.stdout.flush()  # a broken pipe shows here, not in the interpreter's last flush
        return code
    except SeqrlError as exc:
        print(f"seqrl: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("seqrl: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader left (`seqrl datasets list | head -1`): stop quietly
        _drop_stdout()
        return 128 + 13  # as a shell reports a command that SIGPIPE ended


def _drop_stdout() -> None:
    """Point stdout at the null device, so the interpreter's last flush has nowhere to fail."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):  # no file descriptor (captured output): nothing will flush
        pass


def entry_point() -> None:
    """Console-script entry: ``sys.exit(main())``."""
    sys.exit(main())
