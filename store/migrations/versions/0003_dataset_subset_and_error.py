"""dataset subset (all or failed cases) and the reason of a failed build

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 11:20:58.884755
"""

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('datasets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('subset', sa.String(length=16), server_default='all', nullable=False))
        batch_op.add_column(sa.Column('error', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('datasets', schema=None) as batch_op:
        batch_op.drop_column('error')
        batch_op.drop_column('subset')
