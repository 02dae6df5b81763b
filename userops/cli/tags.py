"""Tag commands: ``userops tags show CUSTOMER_ID`` and ``userops tags summary``."""
from __future__ import annotations

from typing import Optional

import typer

tags_app = typer.Typer(help="Customer tags: lifecycle stage, RFM, value tier, crisis priority, behaviour.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(tags_app, name="tags")


from userops.cli.options import day as _parse_day  # noqa: E402  (a YYYY-MM-DD option)
from userops.i18n import register as register_messages, t  # noqa: E402


def _day(value: Optional[str]):
    """--as-of: a day that has begun in the shop (tags describe the data as it stood); a later
    day would show every customer drifting towards churned as if no one would ever buy again."""
    day = _parse_day(value)
    if day is not None:
        from userops.clock import shop_today

        today = shop_today()
        if day > today:
            raise typer.BadParameter(t("tags.cli.future_day", day=day.isoformat(), today=today.isoformat()), param_hint="--as-of")
    return day


register_messages(
    {
        "tags.cli.future_day": {
            "zh-CN": "{day} 在今天（店铺时间 {today}）之后：标签只能按已经到来的日子计算，请写 {today} 或更早的日期",
            "en": "{day} is after today ({today}, shop time): tags can only be computed for a day that has come; give {today} or earlier",
        },
    }
)


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
