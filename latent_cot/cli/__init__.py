"""The `latent-cot` command.

`fit`, `validate` and `test` go to LightningCLI (YAML configs, `--config` composable,
`--print_config`; cli/fit.py). Every other subcommand lives in its own module of this package
(cli/compare.py, cli/data.py, ...), which provides `add_arguments(parser)` and `run(args) -> int`;
modules are imported only when their subcommand runs, so `latent-cot data ...` does not pay for
importing Lightning. The library they call stands beside this package and never imports it.

Bad input of any subcommand (a config value, a data file, a checkpoint) is one line on stderr,
`latent-cot COMMAND: error: ...`, and exit status 2. `--quiet` drops progress output.
"""
from __future__ import annotations

import argparse
import importlib
import sys

TRAINER_COMMANDS = ("fit", "validate", "test")
SUBCOMMANDS = {  # name: (module, one-line help)
    "data": ("latent_cot.cli.data", "make task data, print data statistics, get the public benchmark files"),
    "compare": ("latent_cot.cli.compare", "train several modes on equal terms and write a results table"),
    "evaluate": ("latent_cot.cli.evaluate", "evaluate a checkpoint on a data file"),
    "inspect": ("latent_cot.cli.inspect", "look inside continuous thoughts of a checkpoint"),
    "export": ("latent_cot.cli.export", "copy a checkpoint without optimizer state, to share or commit"),
    "curves": ("latent_cot.cli.curves", "plot and tabulate the validation history of training runs"),
    "table": ("latent_cot.cli.table", "score trained checkpoints on one data file and write a comparison table"),
    "study": ("latent_cot.cli.study", "sweep noise, snapping and sampling of the thoughts and answers of checkpoints"),
    "bench": ("latent_cot.cli.bench", "time the latent forward against the plain forward, and batched generation"),
}


def _fail(command: str, error: BaseException) -> int:
    print(f"latent-cot {command}: error: {error}", file=sys.stderr)
    return 2


def _run_trainer_command(argv: list[str]) -> int:
    from latent_cot.checkpoint_io import CheckpointError
    from latent_cot.cli.fit import run_lightning_cli
    from latent_cot.data.example import DataError
    from latent_cot.datamodule import ConfigError

    if "--quiet" in argv:
        own = argv == sys.argv[1:]
        argv = [a for a in argv if a != "--quiet"] + ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]
        if own:  # DDP starts its other processes from sys.argv: they must get the same command
            sys.argv[1:] = argv
    try:
        run_lightning_cli(argv)
    except (ConfigError, DataError, CheckpointError, FileNotFoundError) as error:  # bad input: its message says what
        return _fail(argv[0], error)
    return 0


def build_parser(command: str | None) -> argparse.ArgumentParser:
    """The parser of every non-trainer subcommand, with the arguments of `command` only: subparsers
    are filled lazily, for the command that runs, to keep --help fast."""
    parser = argparse.ArgumentParser(prog="latent-cot", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in TRAINER_COMMANDS:
        commands.add_parser(name, help=f"LightningCLI {name} (see `latent-cot {name} --help`; --quiet: no progress bar)", add_help=False)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(module=module_name)
        if command == name:
            importlib.import_module(module_name).add_arguments(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from latent_cot.cli.console import silence_third_party

    silence_third_party()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in TRAINER_COMMANDS:
        return _run_trainer_command(argv)
    args = build_parser(argv[0] if argv else None).parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(importlib.import_module(args.module).run(args) or 0)
    except (OSError, ValueError) as error:  # bad input (files, DataError, ConfigError, ...): its message says what
        return _fail(args.command, error)

