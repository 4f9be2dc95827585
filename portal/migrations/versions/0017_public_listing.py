"""public listing: a specialist may opt in to be shown on the public page

Revision ID: 0017_public_listing
Revises: 0016_treatment
Create Date: 2026-12-04 15:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0017_public_listing'
down_revision: str | None = '0016_treatment'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('specialist_profiles') as batch:
        batch.add_column(
            sa.Column('public_listing', sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table('specialist_profiles') as batch:
        batch.drop_column('public_listing')
