"""sso: OpenID Connect identity (issuer + subject), e-mail and team-admin teams on users

Expand-only: nullable columns and one unique constraint on users.

Revision ID: 0006_sso
Revises: 0005_responses
Create Date: 2026-12-06 12:10:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0006_sso'
down_revision = '0005_responses'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('oidc_issuer', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('oidc_subject', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('email', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('teams', sa.JSON(), nullable=True))
        batch_op.create_unique_constraint('uq_users_oidc_identity', ['oidc_issuer', 'oidc_subject'])


def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_constraint('uq_users_oidc_identity', type_='unique')
        batch_op.drop_column('teams')
        batch_op.drop_column('email')
        batch_op.drop_column('oidc_subject')
        batch_op.drop_column('oidc_issuer')
