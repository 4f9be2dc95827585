"""audit trail appended without a global lock and chained afterwards by one sealer

Also ``audited_views``: first views of a series or record per sign-in session, so every
replica writes the audit row once (it was a set in each process's memory).

``audit_events`` gets an append-order ``id`` (the new primary key) and the inserting
transaction's id; ``seq``, ``prev_hash`` and ``hash`` become nullable until a row is sealed.
Existing rows are all sealed: they keep their chain and get ``id = seq``. The append-only
triggers now let exactly one kind of update through: sealing an unsealed row.

Revision ID: 0010_audit_append
Revises: 0009_upload_jobs
Create Date: 2026-12-03 13:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import portal.db

revision: str = "0010_audit_append"
down_revision: str | None = "0009_upload_jobs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXED = ("action", "actor_id", "case_id")
CONTENT = (
    "id",
    "at",
    "actor_id",
    "actor_role",
    "action",
    "outcome",
    "entity_type",
    "entity_id",
    "case_id",
    "client_ip",
    "request_id",
    "details",
    "txid",
)
"""Columns a seal must leave as they are."""
COPIED = (
    "at, actor_id, actor_role, action, outcome, entity_type, entity_id, case_id, client_ip, "
    "request_id, details, prev_hash, hash"
)


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for name in INDEXED:
        op.drop_index(f"ix_audit_events_{name}", table_name="audit_events")
    op.rename_table("audit_events", "audit_events_v1")
    if postgres:
        op.execute("ALTER INDEX audit_events_pkey RENAME TO audit_events_v1_pkey")
    op.create_table(
        "audit_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=True),
        sa.Column("at", portal.db.UTCDateTime(), nullable=False),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("actor_role", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("outcome", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("entity_type", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("entity_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("case_id", sa.Uuid(), nullable=True),
        sa.Column("client_ip", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("request_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("details", sqlmodel.sql.sqltypes.AutoString(length=4000), nullable=False),
        sa.Column("txid", sa.BigInteger(), nullable=True),
        sa.Column("prev_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_events_seq"), ["seq"], unique=True)
        for name in INDEXED:
            batch_op.create_index(f"ix_audit_events_{name}", [name], unique=False)
    op.execute(
        f"INSERT INTO audit_events (id, seq, {COPIED}) "  # noqa: S608 - constant columns
        f"SELECT seq, seq, {COPIED} FROM audit_events_v1"
    )
    op.drop_table("audit_events_v1")
    if postgres:
        op.execute(
            "SELECT setval(pg_get_serial_sequence('audit_events', 'id'), "
            "COALESCE((SELECT MAX(id) FROM audit_events), 0) + 1, false)"
        )
    _forbid_changes_but_sealing(postgres)
    op.create_table(
        "audited_views",
        sa.Column("viewer_id", sa.Uuid(), nullable=False),
        sa.Column("entity_id", sa.Uuid(), nullable=False),
        sa.Column("seen_at", portal.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("viewer_id", "entity_id"),
    )
    with op.batch_alter_table("audited_views", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audited_views_seen_at"), ["seen_at"], unique=False)


def _forbid_changes_but_sealing(postgres: bool) -> None:
    """Append-only in the database itself: the one update allowed is sealing a row."""
    if postgres:
        unchanged = " AND ".join(f"NEW.{c} IS NOT DISTINCT FROM OLD.{c}" for c in CONTENT)
        op.execute(
            "CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger "
            "LANGUAGE plpgsql AS $$ BEGIN "
            "IF TG_OP = 'UPDATE' AND OLD.hash IS NULL AND NEW.hash IS NOT NULL "
            f"AND NEW.seq IS NOT NULL AND {unchanged} THEN RETURN NEW; END IF; "
            "RAISE EXCEPTION 'the audit trail is append-only'; END $$"
        )
        op.execute(
            "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events "
            "FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()"
        )
        return
    changed = " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in CONTENT)
    op.execute(
        "CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events "
        f"WHEN OLD.hash IS NOT NULL OR NEW.hash IS NULL OR NEW.seq IS NULL OR {changed} "
        "BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END"
    )
    op.execute(
        "CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events "
        "BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END"
    )


def downgrade() -> None:
    raise NotImplementedError(
        "the audit trail is not converted back to one sealed in every writer's transaction"
    )
