"""The commands layer: `convtrain --help` lists every command without importing any of them."""

from __future__ import annotations

import importlib
import inspect
import os
import subprocess
import sys

from click.testing import CliRunner

from convtrain import __version__
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


HOOK = """
import atexit, builtins, os
marks = os.environ["CONVTRAIN_TEST_MARKS"]
atexit.register(lambda: open(os.path.join(marks, "atexit"), "w").close())
class _Late:  # collected only by the interpreter's teardown, when builtins may be gone
    def __del__(self, os=os, path=os.path.join(marks, "teardown")):
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY))
builtins._convtrain_test_late = _Late()
"""


def _program(args: list[str], tmp_path, name: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    hooks, marks = tmp_path / "hooks", tmp_path / name
    hooks.mkdir(exist_ok=True)
    marks.mkdir()
    (hooks / "sitecustomize.py").write_text(HOOK)
    env = {**os.environ, "PYTHONPATH": str(hooks), "CONVTRAIN_TEST_MARKS": str(marks)}
    proc = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True)
    return proc, {p.name for p in marks.iterdir()}


def test_the_program_ends_without_the_interpreters_teardown(tmp_path) -> None:
    """A training stopped mid-epoch took TensorFlow 36 s to tear down at exit (entry's docstring):
    the program runs the atexit handlers, flushes its output, keeps main()'s exit code, and ends
    before the teardown."""
    control, marks = _program(["-c", "pass"], tmp_path, "python")
    assert control.returncode == 0 and marks == {"atexit", "teardown"}  # the hook sees teardown

    version, marks = _program(["-m", "convtrain", "--version"], tmp_path, "version")
    assert version.returncode == 0 and version.stdout.strip().endswith(__version__)
    assert marks == {"atexit"}

    missing = str(tmp_path / "nosuch.yaml")
    bad, marks = _program(["-m", "convtrain", "inspect", missing], tmp_path, "error")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and missing in bad.stderr
    assert marks == {"atexit"}
