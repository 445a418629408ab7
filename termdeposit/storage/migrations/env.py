"""Alembic's environment for the store's migrations.

The product runs it through :func:`termdeposit.storage.migrations.upgrade` when it opens a
database, handing over its open connection (``config.attributes["connection"]``): the
migrations then run inside the product's transaction and commit with it. Developers run it
through the ``alembic`` command (``alembic.ini`` next to this file), on the database of
``TERMDEPOSIT_DB_URL``, to write a new revision::

    alembic -c termdeposit/storage/migrations/alembic.ini revision --autogenerate -m "..."
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy.engine import Connection

from termdeposit.core import config as product_config
from termdeposit.storage.database import make_engine
from termdeposit.storage.tables import metadata


def _configure(**options: Any) -> None:
    context.configure(
        target_metadata=metadata,
        compare_type=True,
        # SQLite alters most things only by rebuilding a table: write such steps as batches.
        render_as_batch=True,
        **options,
    )


def _run(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    connection = context.config.attributes.get("connection")
    url = context.config.get_main_option("sqlalchemy.url") or product_config.db_url()
    if connection is not None:
        _run(connection)
    elif context.is_offline_mode():  # alembic ... --sql: print the SQL instead of running it
        _configure(url=url, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
    else:
        engine = make_engine(url)
        try:
            with engine.connect() as connection:
                _run(connection)
        finally:
            engine.dispose()


_main()
