"""the job outbox (sent_at, sends), deployment status as an enum, one active deployment per project and task

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 22:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

DEPLOYMENT_STATES = ('building', 'ready', 'failed', 'cancelled')


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('sends', sa.Integer(), server_default='0', nullable=False))
        batch_op.create_index('ix_jobs_status_sent', ['status', 'sent_at'], unique=False)
    # Jobs queued before the outbox existed were sent by their request: count them as sent.
    op.execute("UPDATE jobs SET sent_at = created_at, sends = 1 WHERE status = 'queued'")
    # A deployment left `building` by a job that already ended takes that job's outcome.
    op.execute("UPDATE deployments SET status = 'failed', error = COALESCE(error, 'its job ended without it') "
               "WHERE status = 'building' AND job_id IN (SELECT id FROM jobs WHERE status IN ('failed', 'succeeded'))")
    op.execute("UPDATE deployments SET status = 'cancelled' "
               "WHERE status = 'building' AND job_id IN (SELECT id FROM jobs WHERE status = 'cancelled')")
    # More than one active per project and task cannot be kept: the newest stays active.
    op.execute("UPDATE deployments SET active = false WHERE active AND EXISTS (SELECT 1 FROM deployments d2 "
               "WHERE d2.active AND d2.project_id = deployments.project_id AND d2.task = deployments.task "
               "AND d2.id > deployments.id)")
    with op.batch_alter_table('deployments', schema=None) as batch_op:
        batch_op.alter_column('status', existing_type=sa.String(length=16),
                              type_=sa.Enum(*DEPLOYMENT_STATES, name='deployment_status', native_enum=False,
                                            create_constraint=True),
                              existing_nullable=False)
        batch_op.create_index('uq_deployments_one_active', ['project_id', 'task'], unique=True,
                              sqlite_where=sa.text('active'), postgresql_where=sa.text('active'))


def downgrade() -> None:
    with op.batch_alter_table('deployments', schema=None) as batch_op:
        batch_op.drop_index('uq_deployments_one_active', sqlite_where=sa.text('active'),
                            postgresql_where=sa.text('active'))
        batch_op.alter_column('status', existing_type=sa.Enum(*DEPLOYMENT_STATES, name='deployment_status',
                                                              native_enum=False, create_constraint=True),
                              type_=sa.String(length=16), existing_nullable=False)
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_status_sent')
        batch_op.drop_column('sends')
        batch_op.drop_column('sent_at')
