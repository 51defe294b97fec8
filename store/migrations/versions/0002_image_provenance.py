"""image provenance: the uploaded format and the ingest job of each image

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 10:53:40.861679
"""

from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source_format', sa.String(length=16), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('job_id', sa.String(length=36), nullable=True))
        batch_op.create_index(batch_op.f('ix_images_job_id'), ['job_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_images_job_id'))
        batch_op.drop_column('job_id')
        batch_op.drop_column('source_format')
