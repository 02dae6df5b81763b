"""`userops … --help`: a flag shows as a flag (`--check`), not as an option taking a value
(`--check <bool>`), on every topic and subcommand; options with a value keep their type."""
from __future__ import annotations

import os
import re
import subprocess
import sys

from typer.main import get_command
from typer.testing import CliRunner

from userops.cli import app
from userops.settings import PROJECT_ROOT

BOOL_METAVAR = re.compile(r"<bool>|\bBOOL(EAN)?\b", re.IGNORECASE)


def _commands(cmd, path=()):
    yield list(path)
    for name, sub in sorted(getattr(cmd, "commands", {}).items()):
        yield from _commands(sub, (*path, name))


def test_no_help_shows_a_value_after_a_flag():
    runner = CliRunner()
    paths = list(_commands(get_command(app)))
    assert ["serve"] in paths and ["incident", "approve"] in paths and len(paths) > 30  # the walk found the commands
    for path in paths:
        res = runner.invoke(app, [*path, "--help"], terminal_width=200)
        assert res.exit_code == 0, (path, res.output)
        shown = [line for line in res.output.splitlines() if BOOL_METAVAR.search(line)]
        assert not shown, (path, shown)
    serve = runner.invoke(app, ["serve", "--help"], terminal_width=200).output
    assert re.search(r"--check\s+Only list", serve) and re.search(r"--no-worker\s+Start the server", serve)
    assert re.search(r"--port\s+<int>", serve)  # an option with a value still names its type
    listing = runner.invoke(app, ["incident", "list", "--help"], terminal_width=200).output
    assert re.search(r"--all\s+--open\s+All incidents", listing)


def test_the_installed_command_shows_flags_as_flags(tmp_path):
    """As an operator runs it (`python -m userops.cli`, the `userops` script's entry point)."""
    env = {**os.environ, "COLUMNS": "200", "PREFECT_HOME": str(tmp_path / "prefect")}
    out = subprocess.run([sys.executable, "-m", "userops.cli", "serve", "--help"], capture_output=True, text=True,
                         cwd=PROJECT_ROOT, env=env, timeout=180)
    assert out.returncode == 0, out.stderr
    assert "--worker-only" in out.stdout and not BOOL_METAVAR.search(out.stdout), out.stdout


def test_every_command_summary_is_one_sentence_line():
    """A command's listing shows its help's first paragraph as written, line breaks kept
    (`serve` printed "… register the alert" and "blocks, …" on two lines): each first
    paragraph is one line."""
    paths = list(_commands(get_command(app)))
    for path in paths[1:]:
        cmd = get_command(app)
        for name in path:
            cmd = cmd.commands[name]
        first = (cmd.help or "").strip().split("\n\n")[0]
        assert first and "\n" not in first, (path, first)
