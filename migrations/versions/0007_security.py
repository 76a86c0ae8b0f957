"""security: users.session_epoch, so signing out invalidates every copy of the session cookie

Expand-only: one column with a server default.

Revision ID: 0007_security
Revises: 0006_sso
Create Date: 2026-12-06 12:05:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0007_security'
down_revision = '0006_sso'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('session_epoch', sa.Integer(), server_default='0', nullable=False))


def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('session_epoch')
