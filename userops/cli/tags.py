"""Tag commands: ``userops tags show CUSTOMER_ID`` and ``userops tags summary``."""
from __future__ import annotations

from typing import Optional

import typer

tags_app = typer.Typer(help="Customer tags: lifecycle stage, RFM, value tier, crisis priority, behaviour.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(tags_app, name="tags")


from userops.cli.options import day as _day  # noqa: E402  (a YYYY-MM-DD option)


@tags_app.command("show")
def show(
    customer_id: str = typer.Argument(..., help="The customer's id."),
    as_of: Optional[str] = typer.Option(None, "--as-of", help="Recompute for this day (YYYY-MM-DD) from the data as it stood."),
) -> None:
    """Each tag of one customer with the numbers behind it."""
    from tasks.tags import explain

    try:
        lines = explain(customer_id, _day(as_of))
    except LookupError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1)
    for line in lines:
        typer.echo(line)


@tags_app.command("summary")
def summary(
    as_of: Optional[str] = typer.Option(None, "--as-of", help="Recompute for this day (YYYY-MM-DD) from the data as it stood."),
) -> None:
    """How many customers carry each tag."""
    from tasks.tags import summary as tag_summary

    try:
        lines = tag_summary(_day(as_of))
    except LookupError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1)
    for line in lines:
        typer.echo(line)
