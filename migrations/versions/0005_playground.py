"""playground: per-user keys and saved conversations

Expand-only: two new tables.

Revision ID: 0005_playground
Revises: 0004
Create Date: 2026-12-06 03:30:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0005_playground'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('playground_profiles',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('key_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['key_id'], ['gateway_keys.id'], name=op.f('fk_playground_profiles_key_id_gateway_keys'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_playground_profiles_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_playground_profiles'))
    )
    op.create_table('playground_conversations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('model', sa.String(length=200), nullable=False),
    sa.Column('system_prompt', sa.Text(), nullable=True),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('tools', sa.JSON(), nullable=True),
    sa.Column('messages', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_playground_conversations_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_playground_conversations'))
    )
    with op.batch_alter_table('playground_conversations', schema=None) as batch_op:
        batch_op.create_index('ix_playground_conversations_user_updated', ['user_id', 'updated_at'], unique=False)


def downgrade():
    with op.batch_alter_table('playground_conversations', schema=None) as batch_op:
        batch_op.drop_index('ix_playground_conversations_user_updated')
    op.drop_table('playground_conversations')
    op.drop_table('playground_profiles')
