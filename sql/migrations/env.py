"""Alembic environment for the userops warehouse.

Called from ``userops.db.migrate`` with an open connection in ``config.attributes``;
``alembic -c sql/alembic.ini upgrade head`` also works with USEROPS_DATABASE_URL set.
"""
from alembic import context
import sqlalchemy as sa

config = context.config


def run() -> None:
    conn = config.attributes.get("connection")
    if conn is not None:
        context.configure(connection=conn, render_as_batch=conn.dialect.name == "sqlite")
        with context.begin_transaction():
            context.run_migrations()
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        from userops.settings import get_settings

        url = get_settings().database_url
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        context.configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
        with context.begin_transaction():
            context.run_migrations()


run()
