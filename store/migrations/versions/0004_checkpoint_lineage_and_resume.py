"""checkpoint classes, config, dataset key and resume state

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 11:55:14.965666
"""

from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('checkpoints', schema=None) as batch_op:
        batch_op.add_column(sa.Column('classes', sa.JSON(), server_default='[]', nullable=False))
        batch_op.add_column(sa.Column('config', sa.JSON(), server_default='{}', nullable=False))
        batch_op.add_column(sa.Column('dataset_key', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('state', sa.JSON(), server_default='{}', nullable=False))
        batch_op.create_index(batch_op.f('ix_checkpoints_dataset_key'), ['dataset_key'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('checkpoints', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_checkpoints_dataset_key'))
        batch_op.drop_column('state')
        batch_op.drop_column('dataset_key')
        batch_op.drop_column('config')
        batch_op.drop_column('classes')
