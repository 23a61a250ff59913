"""The commands layer: `convtrain --help` lists every command without importing any of them."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys

from click.testing import CliRunner

from convtrain.commands import COMMANDS, cli


def test_the_command_list_is_each_commands_own_help() -> None:
    for name, line in COMMANDS.items():
        command = getattr(importlib.import_module(f"convtrain.commands.{name}"), name)
        assert inspect.cleandoc(command.help).split("\n\n")[0] == line, name


def test_help_lists_the_commands_as_click_would() -> None:
    import click

    eager = click.Group(
        "convtrain",
        commands={name: cli.get_command(None, name) for name in COMMANDS},  # type: ignore[arg-type]
        context_settings=cli.context_settings,
    )
    lazy_help = CliRunner().invoke(cli, ["--help"]).output
    eager_help = CliRunner().invoke(eager, ["--help"]).output
    assert lazy_help.split("Commands:")[1] == eager_help.split("Commands:")[1]
    assert CliRunner().invoke(cli, ["nosuch"]).exit_code == 2


def test_listing_the_commands_imports_none_of_them() -> None:
    code = (
        "import sys; from click.testing import CliRunner; from convtrain.commands import cli; "
        "assert CliRunner().invoke(cli, ['--help']).exit_code == 0; "
        "print(sorted(m for m in sys.modules if m.startswith('convtrain.commands.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_command_module_imports_without_tensorflow() -> None:
    modules = ", ".join(f"convtrain.commands.{name}" for name in COMMANDS)
    code = f"import sys, {modules}; print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
