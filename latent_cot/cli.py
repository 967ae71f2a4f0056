"""The `latent-cot` command.

`fit`, `validate` and `test` go to LightningCLI (YAML configs, `--config` composable,
`--print_config`). Every other subcommand lives in its own module, which provides
`add_arguments(parser)` and `run(args) -> int`; modules are imported only when their subcommand
runs, so `latent-cot data ...` does not pay for importing Lightning.
"""
from __future__ import annotations

import argparse
import importlib
import sys

TRAINER_COMMANDS = ("fit", "validate", "test")
SUBCOMMANDS = {  # name: (module, one-line help)
    "data": ("latent_cot.data.cli", "make task data, print data statistics"),
    "compare": ("latent_cot.compare", "train several modes on equal terms and write a results table"),
    "evaluate": ("latent_cot.evaluate_cli", "evaluate a checkpoint on a data file"),
    "inspect": ("latent_cot.inspect_cli", "look inside continuous thoughts of a checkpoint"),
    "curves": ("latent_cot.curves_cli", "plot and tabulate the validation history of training runs"),
    "bench": ("latent_cot.bench", "time the latent forward against the plain forward, and batched generation"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in TRAINER_COMMANDS:
        from latent_cot.train_cli import run_lightning_cli

        run_lightning_cli(argv)
        return 0
    parser = argparse.ArgumentParser(prog="latent-cot", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in TRAINER_COMMANDS:
        commands.add_parser(name, help=f"LightningCLI {name} (see `latent-cot {name} --help`)", add_help=False)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(module=module_name)
        # Subparsers are built lazily only for the command that runs, to keep --help fast.
        if argv and argv[0] == name:
            importlib.import_module(module_name).add_arguments(sub)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(importlib.import_module(args.module).run(args) or 0)
    except (FileNotFoundError, ValueError) as error:  # bad input (DataError, ConfigError, ...): its message says what
        print(f"latent-cot {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
