"""The ``userops`` command. Each topic lives in its own module and adds its commands here."""
from __future__ import annotations

import os
import sys

import typer
import typer.main

from userops.settings import PROJECT_ROOT

# Quiet, offline, project-local Prefect unless the operator configured otherwise.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_HOME", str(PROJECT_ROOT / ".prefect"))
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "userops")
# userops lines outside a flow run (a CLI command) stay on the terminal; not a warning each
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_TASKS_DEFAULT_NO_CACHE", "true")  # steps pass DataFrames; never hash them


def _flags_take_no_value() -> None:
    """Typer's boxed (rich) help prints a value type after every option, flags included
    (``--check <bool>``, even ``--help <bool>``), as if a flag took a value; its plain help
    does not. Show a flag as a flag there too: only the help's type column changes, never
    what an option accepts."""
    from typer.core import TyperOption

    display_type = TyperOption.display_type_rich
    if getattr(display_type, "userops_flags", False):
        return

    def display_type_rich(self, ctx):
        return None if self.is_flag else display_type(self, ctx)

    display_type_rich.userops_flags = True
    TyperOption.display_type_rich = display_type_rich


_flags_take_no_value()

app = typer.Typer(help="userops: the user-operations center that runs itself.", no_args_is_help=True, add_completion=False)

from userops.cli import data  # noqa: E402

data.register(app)

for _name in ("tags", "model", "alert", "campaign", "incident", "serve"):
    try:
        _mod = __import__(f"userops.cli.{_name}", fromlist=["register"])
    except ModuleNotFoundError as exc:  # a topic not built yet
        if exc.name != f"userops.cli.{_name}":
            raise
        continue
    _mod.register(app)


def language() -> str:
    """The settings' language; when the settings cannot be read (a broken userops.yaml, a wrong
    USEROPS_* value), the language the settings error itself is written in
    (``settings.fallback_language``): help and that error come out in the same language."""
    from userops.settings import fallback_language, get_settings

    try:
        return get_settings().language
    except Exception:
        return fallback_language()


def command(lang: str | None = None):
    """``app`` as the click command ``main()`` runs: its ``--help`` (summaries, option and
    argument help, typer's panel titles and markers) in ``lang`` (default: ``language()``),
    from ``userops/cli/help_texts.py``. Typer's words are module-wide: set for this process."""
    from userops.cli import help_texts

    lang = lang or language()
    help_texts.use_typer_texts(lang)
    help_texts.use_usage_error_texts(lang)
    return help_texts.localize(typer.main.get_command(app), lang)


def _run(cmd) -> None:
    """What ``app()`` does, with ``cmd`` in place of the command typer would build (typer's
    pretty tracebacks included)."""
    from typer.main import DeveloperExceptionConfig, _typer_developer_exception_attr_name, except_hook

    if sys.excepthook != except_hook:
        sys.excepthook = except_hook
    try:
        return cmd()
    except Exception as e:
        setattr(e, _typer_developer_exception_attr_name, DeveloperExceptionConfig(
            pretty_exceptions_enable=app.pretty_exceptions_enable,
            pretty_exceptions_show_locals=app.pretty_exceptions_show_locals,
            pretty_exceptions_short=app.pretty_exceptions_short,
        ))
        raise


def main() -> None:
    from pydantic import ValidationError
    from pydantic_settings import SettingsError
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError, ProgrammingError

    from userops.cli.options import t
    from userops.db import WarehouseLocationError
    from userops.settings import SettingsFileError, fallback_language, settings_file_problem, settings_problems

    try:
        _run(command())
    except (ArgumentError, NoSuchModuleError) as exc:  # not a URL SQLAlchemy can use
        typer.echo(t("cli.bad_database_url", detail=str(exc).splitlines()[0]), err=True)
        raise SystemExit(2)
    except (OperationalError, ProgrammingError) as exc:
        from tasks.alerts.problems import warehouse_unreachable, warehouse_unreachable_text, warehouse_url

        text = str(exc.orig) if getattr(exc, "orig", None) is not None else str(exc)
        if warehouse_unreachable(exc):
            typer.echo(warehouse_unreachable_text(text.strip().splitlines()[0], fix=True), err=True)
            raise SystemExit(1)
        if "no such table" not in text and "UndefinedTable" not in type(getattr(exc, "orig", None)).__name__:
            raise
        # a warehouse that was never set up: not a traceback, the command that sets it up
        typer.echo(t("cli.no_tables", url=warehouse_url(), detail=text.splitlines()[0]), err=True)
        raise SystemExit(1)
    except ValidationError as exc:  # a wrong USEROPS_* value or config file: say which and what to give
        # the settings cannot be read: the language from the environment (or the file) as written
        lang = fallback_language()
        typer.echo(t("cli.bad_settings", lang), err=True)
        for line in settings_problems(exc, lang):
            typer.echo("  " + line, err=True)
        raise SystemExit(2)
    except SettingsFileError as exc:  # USEROPS_CONFIG_FILE missing, not YAML, not a mapping
        lang = fallback_language()
        typer.echo(t("cli.bad_settings", lang), err=True)
        typer.echo("  " + settings_file_problem(exc, lang), err=True)
        raise SystemExit(2)
    except SettingsError as exc:  # a USEROPS_* value that should be JSON (a list, a mapping) and is not
        lang = fallback_language()
        typer.echo(t("cli.bad_settings", lang), err=True)
        typer.echo("  " + str(exc).splitlines()[0], err=True)
        raise SystemExit(2)
    except WarehouseLocationError as exc:  # a mistyped SQLite path: nothing created
        typer.echo(t("cli.warehouse_dir_missing", directory=str(exc.path.parent), path=str(exc.path), source=exc.source()), err=True)
        raise SystemExit(2)
