"""template: the worker's processed messages

The first revision of the template's own branch (label `template`), apart
from the service's revisions in migrations/versions. Services made before
this branch existed already have the table (their revision 0002 made it):
it is created only where it is missing.

Revision ID: template_0001
Revises:
Create Date: 2026-12-05 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "template_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("template",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table("processed_messages"):
        return
    op.create_table(
        "processed_messages",
        sa.Column("key", sqlmodel.AutoString(length=200), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )


def downgrade() -> None:
    op.drop_table("processed_messages")
