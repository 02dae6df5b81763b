"""``userops ARGS`` as the installed command runs it (``userops.cli.main``: the language from
the settings, typer's words and usage errors in it, the one-line errors and their exit codes),
but inside the test process: a new interpreter costs seconds of imports per call on two busy
cores, this costs milliseconds. The environment is exactly the one given (``USEROPS_*`` not
given are unset) for the call; settings, engines and typer's module-wide words are put back
afterwards. A few tests still run the real installed script (tests/datapath/test_cli_help.py,
test_cli_help_languages.py), so the entry point itself stays covered."""
from __future__ import annotations

import contextlib
import io
import os
import sys
import traceback
from dataclasses import dataclass


@dataclass
class Result:
    """The fields of ``subprocess.CompletedProcess`` the tests read."""

    returncode: int
    stdout: str
    stderr: str


def run_userops(args: list[str], env: dict[str, str | None]) -> Result:
    """Run ``userops *args`` with ``env`` as the whole ``USEROPS_*`` environment (a value of
    None: unset) plus any other variables it names; ``COLUMNS`` is 200 unless given."""
    from typer import rich_utils

    from userops.cli import help_texts, main
    from userops.db import dispose_engines
    from userops.settings import reset_settings

    saved_env = dict(os.environ)
    saved_argv = sys.argv
    saved_words = {name: getattr(rich_utils, name) for name in help_texts.TYPER_TEXTS["en"]}
    saved_error = rich_utils.rich_format_error
    out, err = io.StringIO(), io.StringIO()
    code = 0
    try:
        for k in [k for k in os.environ if k.startswith("USEROPS_")]:
            del os.environ[k]
        os.environ["COLUMNS"] = "200"
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        reset_settings()
        dispose_engines()
        sys.argv = ["userops", *args]
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main()
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
                if isinstance(exc.code, str):
                    err.write(exc.code + "\n")
            except Exception:  # what a real run would print as a traceback
                err.write(traceback.format_exc())
                code = 1
    finally:
        sys.argv = saved_argv
        os.environ.clear()
        os.environ.update(saved_env)
        help_texts.restore_typer_texts(saved_words)
        rich_utils.rich_format_error = saved_error
        reset_settings()
        dispose_engines()
    return Result(code, out.getvalue(), err.getvalue())
