"""Every `latent-cot ...` command line in the code blocks of README.md and docs/ parses: trainer
commands through LightningCLI (every config found and every key known, via --print_config), the
others through their subcommand's argparse parser. A renamed flag or config breaks this test, not a reader."""
import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from latent_cot.cli import TRAINER_COMMANDS, build_parser

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMAND = re.compile(r"(?:^|\s|&&\s*)(?:\.venv/bin/)?latent-cot\s+(.*)")


def documented_commands() -> list[tuple[str, list[str]]]:
    """(file:line, argv after `latent-cot`) for every command line inside a ``` block."""
    found = []
    for path in DOCUMENTS:
        in_block, pending, start = False, "", 0
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if line.lstrip().startswith("```"):
                in_block = not in_block
                continue
            if not in_block:
                continue
            if not pending:
                start = number
            pending += line
            if pending.endswith("\\"):  # a continued command line
                pending = pending[:-1] + " "
                continue
            match = COMMAND.search(pending)
            if match:
                text = re.split(r"\s(?:&&|\||>)\s", match.group(1))[0]  # the command alone, not what follows it
                found.append((f"{path.relative_to(ROOT)}:{start}", shlex.split(text, comments=True)))
            pending = ""
    return found


COMMANDS = documented_commands()


def test_the_documents_hold_commands_of_every_kind():
    assert len(COMMANDS) > 25
    assert {argv[0] for _, argv in COMMANDS} >= {"fit", "compare", "evaluate", "inspect", "table", "data", "bench", "export", "curves"}


@pytest.mark.parametrize("where, argv", COMMANDS, ids=[where for where, _ in COMMANDS])
def test_documented_command_parses(where, argv, monkeypatch):
    monkeypatch.chdir(ROOT)  # configs are named from the repository root
    if argv[0] in TRAINER_COMMANDS:
        from latent_cot.cli.fit import make_cli

        args = [a for a in argv[1:] if a not in ("--quiet", "--print_config")]
        if "--ckpt_path" in args:  # an argument of Trainer.fit, not of the config that run=False parses
            del args[args.index("--ckpt_path"):args.index("--ckpt_path") + 2]
        args.append("--print_config")
        with contextlib.redirect_stdout(io.StringIO()), pytest.raises(SystemExit) as stop:
            make_cli(args, run=False)
        assert stop.value.code == 0, f"{where}: latent-cot {shlex.join(argv)} does not parse"
        return
    if "--help" in argv or "-h" in argv:
        with contextlib.redirect_stdout(io.StringIO()), pytest.raises(SystemExit) as stop:
            build_parser(argv[0]).parse_args(argv)
        assert stop.value.code == 0, where
        return
    try:
        build_parser(argv[0]).parse_args(argv)
    except SystemExit:
        pytest.fail(f"{where}: latent-cot {shlex.join(argv)} does not parse")
