"""dashboard sign-in sessions (a cookie standing for a token)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 06:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'web_sessions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('token_id', sa.Integer(), nullable=False),
        sa.Column('secret_hash', sa.String(length=64), nullable=False),
        sa.Column('csrf_token', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['token_id'], ['api_tokens.id'], name='fk_web_sessions_token_id_api_tokens',
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name='pk_web_sessions'),
        sa.UniqueConstraint('secret_hash', name='uq_web_sessions_secret_hash'),
    )
    op.create_index('ix_web_sessions_token_id', 'web_sessions', ['token_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_web_sessions_token_id', table_name='web_sessions')
    op.drop_table('web_sessions')
