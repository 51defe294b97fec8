"""detection: a deployment task, the project's pre-annotation setting, evaluations of checkpoints

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 08:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

OLD_TASKS = ('suggestion', 'classification')
NEW_TASKS = ('suggestion', 'classification', 'detection')
EVALUATION_STATES = ('running', 'succeeded', 'failed', 'cancelled')


def _task_type(values):
    return sa.Enum(*values, name='deployment_task', native_enum=False, create_constraint=True, length=14)


def _retask(values) -> None:
    """Swap the CHECK constraint of deployments.task for the new type's (Alembic adds it on both databases)."""
    with op.batch_alter_table('deployments', schema=None) as batch_op:
        batch_op.drop_constraint('deployment_task', type_='check')
        batch_op.alter_column('task', existing_type=sa.String(length=14), type_=_task_type(values),
                              existing_nullable=False)


def upgrade() -> None:
    _retask(NEW_TASKS)
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pre_annotate_after_ingest', sa.Boolean(), server_default=sa.false(),
                                      nullable=False))
        batch_op.add_column(sa.Column('pre_annotate_threshold', sa.Float(), server_default='0.5', nullable=False))
    op.create_table(
        'evaluations',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('project_id', sa.Integer(), nullable=False),
        sa.Column('checkpoint_id', sa.Integer(), nullable=False),
        sa.Column('deployment_id', sa.Integer(), nullable=True),
        sa.Column('status', sa.Enum(*EVALUATION_STATES, name='evaluation_status', native_enum=False,
                                    create_constraint=True, length=9), nullable=False),
        sa.Column('selection', sa.JSON(), nullable=False),
        sa.Column('metrics', sa.JSON(), nullable=False),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('job_id', sa.String(length=36), nullable=True),
        sa.Column('created_by', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['checkpoint_id'], ['checkpoints.id'], name='fk_evaluations_checkpoint_id_checkpoints',
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['created_by'], ['users.id'], name='fk_evaluations_created_by_users',
                                ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['deployment_id'], ['deployments.id'], name='fk_evaluations_deployment_id_deployments',
                                ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name='fk_evaluations_project_id_projects',
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name='pk_evaluations'),
    )
    op.create_index('ix_evaluations_checkpoint_id', 'evaluations', ['checkpoint_id'], unique=False)
    op.create_index('ix_evaluations_project_id', 'evaluations', ['project_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_evaluations_project_id', table_name='evaluations')
    op.drop_index('ix_evaluations_checkpoint_id', table_name='evaluations')
    op.drop_table('evaluations')
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.drop_column('pre_annotate_threshold')
        batch_op.drop_column('pre_annotate_after_ingest')
    op.execute("UPDATE annotations SET deployment_id = NULL WHERE deployment_id IN "
               "(SELECT id FROM deployments WHERE task = 'detection')")
    op.execute("DELETE FROM deployments WHERE task = 'detection'")
    _retask(OLD_TASKS)
