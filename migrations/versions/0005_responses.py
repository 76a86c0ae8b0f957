"""responses: stored Responses API objects (previous_response_id, GET/DELETE)

Expand-only: one new table.

Revision ID: 0005_responses
Revises: 0005_playground
Create Date: 2026-12-06 04:30:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0005_responses'
down_revision = '0005_playground'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('stored_responses',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('key_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('model', sa.String(length=200), nullable=False),
    sa.Column('previous_response_id', sa.String(length=64), nullable=True),
    sa.Column('input_items', sa.JSON(), nullable=False),
    sa.Column('response', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stored_responses'))
    )
    with op.batch_alter_table('stored_responses', schema=None) as batch_op:
        batch_op.create_index('ix_stored_responses_key_created', ['key_id', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_stored_responses_created_at'), ['created_at'], unique=False)


def downgrade():
    with op.batch_alter_table('stored_responses', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_stored_responses_created_at'))
        batch_op.drop_index('ix_stored_responses_key_created')
    op.drop_table('stored_responses')
