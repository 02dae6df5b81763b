"""The ``userops`` command. Each topic lives in its own module and adds its commands here."""
from __future__ import annotations

import os

import typer

from userops.settings import PROJECT_ROOT

# Quiet, offline, project-local Prefect unless the operator configured otherwise.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_HOME", str(PROJECT_ROOT / ".prefect"))
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "userops")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_TASKS_DEFAULT_NO_CACHE", "true")  # steps pass DataFrames; never hash them

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


def main() -> None:
    app()
