"""The tables, as SQLAlchemy Core metadata that the repositories build statements from.

The database itself is created by the Alembic migrations in ``migrations/versions``, which are
hand-written and frozen; this module must describe the same schema, and
``tests/store/test_store_sql.py`` compares the two on both backends so they cannot drift.

Portability between SQLite and PostgreSQL decides the column types: ids are UUID strings (SQLite
has no UUID type), strings are unbounded unless their format bounds them (so PostgreSQL never
rejects a value SQLite would accept), env is generic JSON, and times go through
:class:`UTCDateTime` so both backends hand back aware UTC datetimes.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

# Deterministic constraint names: later migrations have to name what they alter or drop, and
# SQLite's batch mode recreates tables by those names.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Alembic's default table name would collide with another application's migrations when Nova
# shares a database or schema with it.
VERSION_TABLE = "nova_alembic_version"

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


def _keyset_text() -> sa.types.TypeEngine[str]:
    """Text that lists are ordered and paginated by: byte order ("C") on every backend.

    SQLite compares bytes; PostgreSQL would otherwise use the database's locale (en_US sorts
    "a-c" after "ab"), so the same data would list in a different order per backend.
    """
    return sa.String().with_variant(sa.String(collation="C"), "postgresql")


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on every backend.

    PostgreSQL stores ``timestamptz`` and returns aware values already. SQLite has no time zone
    support: the value is stored as naive UTC text (a fixed-width format, so ordering and keyset
    comparisons on the text stay chronological) and the zone is put back on the way out.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.utcoffset() is None:
            # A naive time is ambiguous; guessing a zone would silently reorder logs.
            raise ValueError(f"naive datetime {value.isoformat()} given to the store; use UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# SQLite autoincrements only an INTEGER PRIMARY KEY (an alias of the rowid).
_SEQUENCE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _function_id_key() -> sa.Column[str]:
    return sa.Column(
        "function_id",
        sa.String(36),
        sa.ForeignKey("functions.id", ondelete="CASCADE"),
        primary_key=True,
    )


# ``config`` is the FunctionConfig document (nova.store.config_codec) without the name: a
# field added to the config later needs no migration.
functions = sa.Table(
    "functions",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("name", _keyset_text(), nullable=False, unique=True),
    sa.Column("config", sa.JSON(), nullable=False),
    sa.Column("code_hash", sa.String(64), nullable=False),
    sa.Column("code_size", sa.BigInteger(), nullable=False),
    sa.Column("revision", sa.Integer(), nullable=False),
    # The highest version number ever published: numbers are not reused after a delete.
    sa.Column("last_version", sa.Integer(), nullable=False, server_default=sa.text("0")),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

# The files of every code hash a function's $LATEST or versions use, shared between them.
code_files = sa.Table(
    "code_files",
    metadata,
    _function_id_key(),
    sa.Column("code_hash", sa.String(64), primary_key=True),
    sa.Column("path", sa.String(), primary_key=True),
    sa.Column("content", sa.LargeBinary(), nullable=False),
    sa.Column("executable", sa.Boolean(), nullable=False),
)

function_versions = sa.Table(
    "function_versions",
    metadata,
    _function_id_key(),
    sa.Column("number", sa.Integer(), primary_key=True),
    sa.Column("config", sa.JSON(), nullable=False),
    sa.Column("code_hash", sa.String(64), nullable=False),
    sa.Column("code_size", sa.BigInteger(), nullable=False),
    sa.Column("description", sa.Text(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

function_aliases = sa.Table(
    "function_aliases",
    metadata,
    _function_id_key(),
    sa.Column("name", _keyset_text(), primary_key=True),
    sa.Column("routing", sa.JSON(), nullable=False),  # [[version, weight], ...]
    sa.Column("description", sa.Text(), nullable=False),
    # none_as_null: no policy is SQL NULL (not JSON null), so "has a policy" is IS NOT NULL.
    sa.Column("policy", sa.JSON(none_as_null=True), nullable=True),
    sa.Column("analysis", sa.JSON(none_as_null=True), nullable=True),
    sa.Column("revision", sa.Integer(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

alias_history = sa.Table(
    "alias_history",
    metadata,
    sa.Column("id", _SEQUENCE, primary_key=True, autoincrement=True),
    sa.Column(
        "function_id",
        sa.String(36),
        sa.ForeignKey("functions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("alias", sa.String(), nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("before", sa.JSON(), nullable=False),
    sa.Column("after", sa.JSON(), nullable=False),
    sa.Column("reason", sa.String(), nullable=False),
    sa.Column("detail", sa.JSON(), nullable=False),
    sa.Index(None, "function_id", "alias", "id"),
)

# No foreign key: the entry for a deleted function must outlive it, so followers learn of it.
change_log = sa.Table(
    "change_log",
    metadata,
    sa.Column("seq", _SEQUENCE, primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("kind", sa.String(), nullable=False),
    sa.Column("function_id", sa.String(36), nullable=False),
    sa.Column("function_name", sa.String(), nullable=False),
    sa.Column("version", sa.Integer(), nullable=True),
    sa.Column("alias", sa.String(), nullable=True),
    # The secret a secret.changed / secret.deleted entry names (function_id and _name are "").
    sa.Column("secret", sa.String(), nullable=True),
    # The API key (its id) a key.changed entry names (function_id and _name are "").
    sa.Column("api_key", sa.String(), nullable=True),
    sa.Index(None, "at"),
)

# No foreign key to functions: logs outlive the function they describe, and the batcher must
# never fail a flush because a function was deleted meanwhile.
invocation_logs = sa.Table(
    "invocation_logs",
    metadata,
    sa.Column("id", _keyset_text(), primary_key=True),
    # NULL only on rows older than the column whose function was deleted before it existed.
    sa.Column("function_id", sa.String(36), nullable=True),
    sa.Column("function_name", _keyset_text(), nullable=False),
    sa.Column("runtime", sa.String(), nullable=False),
    sa.Column("version", sa.String(), nullable=False),
    # What the caller asked for: an alias, a version number, or "" for $LATEST.
    sa.Column("qualifier", sa.String(), nullable=False, server_default=sa.text("''")),
    sa.Column("duration_ms", sa.Float(), nullable=False),
    sa.Column("total_ms", sa.Float(), nullable=False, server_default=sa.text("0")),
    sa.Column("start", sa.String(), nullable=False, server_default=sa.text("'warm'")),
    sa.Column("sandbox_ms", sa.Float(), nullable=True),
    sa.Column("code_ms", sa.Float(), nullable=True),
    sa.Column("runtime_ms", sa.Float(), nullable=True),
    sa.Column("init_ms", sa.Float(), nullable=True),
    sa.Column("cold_start", sa.Boolean(), nullable=False),
    sa.Column("success", sa.Boolean(), nullable=False),
    sa.Column("error_type", sa.String(), nullable=True),
    sa.Column("error_message", sa.Text(), nullable=True),
    sa.Column("input_size", sa.BigInteger(), nullable=False),
    sa.Column("output_size", sa.BigInteger(), nullable=False),
    sa.Column("stdout", sa.Text(), nullable=False),
    sa.Column("stderr", sa.Text(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    # Every index ends in id so the keyset (created_at desc, id desc) is served by an index scan.
    sa.Index(None, "function_id", "created_at", "id"),
    sa.Index(None, "function_id", "version", "created_at"),  # a version's recent outcomes
    sa.Index(None, "function_name", "created_at", "id"),
    sa.Index(None, "created_at", "id"),
)

# Running totals (invocations, errors, starts...) that /stats reports across restarts; each
# daemon adds what it counted since its last flush.
counters = sa.Table(
    "counters",
    metadata,
    sa.Column("name", sa.String(), primary_key=True),
    sa.Column("value", sa.BigInteger(), nullable=False),
)

# The queue of asynchronous invocations (nova.core.events). ``available_at`` is when a pending
# event is due and, while it runs, when its lease expires: one (status, available_at) index
# serves claiming both new events and those of crashed workers. Idempotency keys are unique per
# function (NULLs never collide). No foreign key: an event outlives a deleted function (it dies
# with Function.NotFound, and can be replayed once the function exists again).
async_events = sa.Table(
    "async_events",
    metadata,
    sa.Column("id", _keyset_text(), primary_key=True),
    sa.Column("function_name", sa.String(), nullable=False),
    sa.Column("qualifier", sa.String(), nullable=False),
    sa.Column("payload", sa.LargeBinary(), nullable=False),
    sa.Column("idempotency_key", sa.String(), nullable=True),
    sa.Column("source", sa.String(), nullable=False),
    sa.Column("status", sa.String(), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("lease_owner", sa.String(), nullable=True),
    sa.Column("available_at", UTCDateTime(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("finished_at", UTCDateTime(), nullable=True),
    sa.Column("result", sa.LargeBinary(), nullable=True),
    sa.Column("errors", sa.JSON(), nullable=False),
    sa.Column("last_error_type", sa.String(), nullable=True),
    sa.UniqueConstraint("function_name", "idempotency_key"),
    sa.Index(None, "status", "available_at"),
    sa.Index(None, "status", "updated_at", "id"),  # dead letters, newest first; retention
)

# Encrypted secrets (nova.secrets): AES-256-GCM ciphertext with its tag, the nonce, and the id
# of the master key that sealed it. Never a value in clear.
secrets = sa.Table(
    "secrets",
    metadata,
    sa.Column("name", _keyset_text(), primary_key=True),
    sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
    sa.Column("nonce", sa.LargeBinary(), nullable=False),
    sa.Column("key_id", sa.String(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

# Custom HTTP routes (nova.core.triggers): method + path prefix -> function[:qualifier]. One
# route per (method, prefix); "ANY" is a method of its own. ``signature`` is the webhook HMAC
# check as JSON (the secret by reference only). Deleted with their function.
http_routes = sa.Table(
    "http_routes",
    metadata,
    sa.Column("id", sa.String(), primary_key=True),
    sa.Column("method", sa.String(), nullable=False),
    sa.Column("path_prefix", sa.String(), nullable=False),
    sa.Column(
        "function_id",
        sa.String(36),
        sa.ForeignKey("functions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("function_name", sa.String(), nullable=False),
    sa.Column("qualifier", sa.String(), nullable=False),
    sa.Column("auth", sa.String(), nullable=False),
    sa.Column("signature", sa.JSON(), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("method", "path_prefix"),
)

# The settings of a function's URL (/fn/{name}) where they differ from the defaults.
function_urls = sa.Table(
    "function_urls",
    metadata,
    sa.Column(
        "function_id",
        sa.String(36),
        sa.ForeignKey("functions.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("auth", sa.String(), nullable=False),
    sa.Column("signature", sa.JSON(), nullable=True),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

# Schedules (nova.schedules): ``next_run_at`` is the next tick no daemon has claimed. A daemon
# claims a tick by moving it forward with ``WHERE next_run_at = <the tick it read>`` in the
# transaction that stores the tick's event, so one tick runs once however many daemons share
# the store (the event's idempotency key, schedule id + tick, is a second guard).
schedules = sa.Table(
    "schedules",
    metadata,
    sa.Column("id", _keyset_text(), primary_key=True),
    sa.Column(
        "function_id",
        sa.String(36),
        sa.ForeignKey("functions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("function_name", sa.String(), nullable=False),
    sa.Column("qualifier", sa.String(), nullable=False),
    sa.Column("expression", sa.String(), nullable=False),
    sa.Column("timezone", sa.String(), nullable=False),
    sa.Column("payload", sa.LargeBinary(), nullable=False),
    sa.Column("catch_up", sa.String(), nullable=False),
    sa.Column("enabled", sa.Boolean(), nullable=False),
    sa.Column("next_run_at", UTCDateTime(), nullable=False),
    sa.Column("last_run_at", UTCDateTime(), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Index(None, "enabled", "next_run_at"),
    sa.Index(None, "function_name", "id"),
)
# The compile state of a compiled function (nova.core.builds): its last build and the last one
# that succeeded, named by the build key under every daemon's <data_dir>/compiled/.
compile_states = sa.Table(
    "compile_states",
    metadata,
    _function_id_key(),
    sa.Column("code_hash", sa.String(64), nullable=False),
    sa.Column("status", sa.String(), nullable=False),
    sa.Column("output", sa.Text(), nullable=False),
    sa.Column("build_key", sa.String(), nullable=False),
    sa.Column("good_code_hash", sa.String(64), nullable=True),
    sa.Column("good_build_key", sa.String(), nullable=True),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

# Queue triggers (nova.core.queue_triggers): what each daemon consumes. No foreign key to
# functions: a trigger outlives its function's deletion (its messages then fail with
# Function.NotFound and reach the dead letters), so re-creating the function resumes it.
queue_triggers = sa.Table(
    "queue_triggers",
    metadata,
    sa.Column("name", _keyset_text(), primary_key=True),
    sa.Column("function_name", sa.String(), nullable=False),
    sa.Column("qualifier", sa.String(), nullable=False),
    sa.Column("source", sa.String(), nullable=False),
    sa.Column("target", sa.String(), nullable=False),
    sa.Column("url", sa.String(), nullable=False),
    sa.Column("batch_size", sa.Integer(), nullable=False),
    sa.Column("concurrency", sa.Integer(), nullable=False),
    sa.Column("enabled", sa.Boolean(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

# API keys (nova.auth): the keyed hash of each key, never the key. ``scope`` is "*" or
# comma-separated function-name patterns.
api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(), primary_key=True),
    sa.Column("name", _keyset_text(), nullable=False, unique=True),
    sa.Column("role", sa.String(), nullable=False),
    sa.Column("scope", sa.String(), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("enabled", sa.Boolean(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=True),
    sa.Column("last_used_at", UTCDateTime(), nullable=True),
    # The secret, sealed under a key derived from the pepper: SigV4 needs it in clear.
    sa.Column("secret_sealed", sa.LargeBinary(), nullable=True),
    # org/project/env the key acts in; NULL: every environment (the admin key of first start).
    sa.Column("environment", sa.String(), nullable=True),
)

# The audit log: append-only, one row per change and per refused request.
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("seq", _SEQUENCE, primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("actor_id", sa.String(), nullable=False),
    sa.Column("actor_name", sa.String(), nullable=False),
    sa.Column("action", sa.String(), nullable=False),
    sa.Column("target", sa.String(), nullable=False),
    sa.Column("outcome", sa.String(), nullable=False),
    sa.Column("status", sa.Integer(), nullable=False),
    sa.Column("source_ip", sa.String(), nullable=False),
    sa.Column("environment", sa.String(), nullable=False, server_default="default/default/default"),
    sa.Index(None, "at"),
    sa.Index(None, "actor_name", "seq"),
    sa.Index(None, "action", "seq"),
    sa.Index("ix_audit_log_environment_seq", "environment", "seq"),
)

# Environments (org/project/env) and their quotas; the default one is inserted by the migration.
environments = sa.Table(
    "environments",
    metadata,
    sa.Column("path", _keyset_text(), primary_key=True),
    # Only the quotas that are set ({"max_functions": 50, ...}): a new quota needs no column.
    sa.Column("quotas", sa.JSON(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)
