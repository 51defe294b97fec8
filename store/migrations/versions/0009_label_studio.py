"""label studio: a project's Label Studio link (URL, API key, training recipe) and its imported annotations

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 08:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'label_studio_links',
        sa.Column('project_id', sa.Integer(), nullable=False),
        sa.Column('url', sa.String(length=2048), nullable=True),
        sa.Column('ls_project', sa.BigInteger(), nullable=True),
        sa.Column('api_key', sa.Text(), nullable=True),
        sa.Column('recipe', sa.JSON(), nullable=True),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name='fk_label_studio_links_project_id_projects',
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('project_id', name='pk_label_studio_links'),
    )
    op.create_table(
        'label_studio_imports',
        sa.Column('project_id', sa.Integer(), nullable=False),
        sa.Column('annotation', sa.BigInteger(), nullable=False),
        sa.Column('task', sa.BigInteger(), nullable=False),
        sa.Column('image_id', sa.Integer(), nullable=False),
        sa.Column('digest', sa.String(length=64), nullable=False),
        sa.Column('box_ids', sa.JSON(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['image_id'], ['images.id'], name='fk_label_studio_imports_image_id_images',
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name='fk_label_studio_imports_project_id_projects',
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('project_id', 'annotation', name='pk_label_studio_imports'),
    )
    with op.batch_alter_table('label_studio_imports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_label_studio_imports_image_id'), ['image_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('label_studio_imports', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_label_studio_imports_image_id'))
    op.drop_table('label_studio_imports')
    op.drop_table('label_studio_links')
