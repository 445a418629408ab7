"""Products from before migrations refuse this database from now on.

They read ``schema_info`` and refuse a database whose version is above the 2 they know: version
3 tells them the schema is now managed by migrations they do not have, instead of letting them
write to tables they no longer describe.

Revision ID: 0002_refuse_old_products
Revises: 0001_baseline
Create Date: 2026-12-06 03:50:00
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = "0002_refuse_old_products"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None

#: The version products from before migrations refuse (they know 1 and 2).
MANAGED_BY_MIGRATIONS = 3

schema_info = sa.table(
    "schema_info",
    sa.column("version", sa.Integer),
    sa.column("upgraded_at", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    """Record schema version 3 (managed by migrations)."""
    op.bulk_insert(
        schema_info, [{"version": MANAGED_BY_MIGRATIONS, "upgraded_at": dt.datetime.now(dt.UTC)}]
    )


def downgrade() -> None:
    """Remove the version 3 record: old products may open the database again."""
    op.execute(schema_info.delete().where(schema_info.c.version == MANAGED_BY_MIGRATIONS))
