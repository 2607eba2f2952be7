"""The PostgreSQL schema as named, ordered migrations, each applied once and recorded in
``migrations``; and the per-dimension HNSW indexes, created when a vector width first appears.

Append new migrations at the end; never edit or reorder one that has shipped. Migrations run in
one transaction under an advisory lock, so servers starting together apply them once.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import psycopg
from psycopg import sql

Migration = Callable[[psycopg.Connection], None]

MIGRATIONS: list[tuple[str, Migration]] = []

MIGRATION_LOCK = 0x72_61_67_73_65_72_76_01
"""The advisory lock key serialising migrations (``ragserv`` and 1, in hex)."""
INDEX_LOCK = 0x72_61_67_73_65_72_76_02
"""The advisory lock key serialising the creation of HNSW indexes."""
INDEX_LOCK_POLL_S = 0.1
"""How often a process waiting for another's index build tries the lock again."""
HNSW_MAX_DIMENSIONS = 2000
"""pgvector indexes ``vector`` columns of at most this width; wider ones are searched exactly."""


def migration(fn: Migration) -> Migration:
    """Register ``fn`` as the next migration, named after the function."""
    MIGRATIONS.append((fn.__name__, fn))
    return fn


def migrate(conn: psycopg.Connection) -> list[str]:
    """Apply pending migrations in one transaction; returns the names applied.

    The transaction-scoped advisory lock makes concurrent starters wait for each other: the
    second finds every migration recorded and applies nothing.
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS migrations (seq bigint GENERATED ALWAYS AS IDENTITY, "
            "name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {name for (name,) in conn.execute("SELECT name FROM migrations")}
        applied = []
        for name, fn in MIGRATIONS:
            if name in done:
                continue
            fn(conn)
            conn.execute("INSERT INTO migrations (name) VALUES (%s)", (name,))
            applied.append(name)
    return applied


def hnsw_index(dimension: int) -> str:
    """Name of the HNSW index over the vectors of one width; built from an int, so safe SQL."""
    return f"chunks_hnsw_{int(dimension)}"


def ensure_hnsw_index(conn: psycopg.Connection, dimension: int) -> bool:
    """Create the partial HNSW index over ``dimension``-wide vectors unless it exists; returns
    whether it exists now (never for widths pgvector cannot index). ``conn`` is in autocommit.

    ``CREATE INDEX CONCURRENTLY`` lets writers of other collections go on while it scans the
    table; a session advisory lock makes concurrent creators wait for the first, and an index
    left invalid by an interrupted build is dropped and built again. Never call this inside a
    document write: the build waits for open transactions on ``chunks`` to end.
    """
    if not 0 < dimension <= HNSW_MAX_DIMENSIONS:
        return False
    name = sql.Identifier(hnsw_index(dimension))
    # Polled, not waited for: a statement waiting for the lock would hold a snapshot, which
    # the holder's CREATE INDEX CONCURRENTLY waits to see end: a deadlock.
    try_lock = "SELECT pg_try_advisory_lock(%s)"
    while conn.execute(try_lock, (INDEX_LOCK,)).fetchone() != (True,):
        time.sleep(INDEX_LOCK_POLL_S)
    try:
        row = conn.execute(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = %s AND c.relnamespace = current_schema()::regnamespace",
            (hnsw_index(dimension),),
        ).fetchone()
        if row is not None and row[0]:
            return True
        if row is not None:
            conn.execute(sql.SQL("DROP INDEX CONCURRENTLY {}").format(name))
        conn.execute(
            sql.SQL(
                "CREATE INDEX CONCURRENTLY {} ON chunks "
                "USING hnsw ((embedding::vector({})) vector_ip_ops) "
                "WHERE vector_dims(embedding) = {}"
            ).format(name, sql.Literal(dimension), sql.Literal(dimension))
        )
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (INDEX_LOCK,))
    return True


@migration
def m001_initial(conn: psycopg.Connection) -> None:
    conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    # Store-wide counters: a version never repeats for a (tenant, collection), even after the
    # collection is deleted and created again; chunk keys are never reused.
    conn.execute("CREATE SEQUENCE versions")
    conn.execute("CREATE SEQUENCE chunk_keys")
    conn.execute(
        """CREATE TABLE collections (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            tenant text NOT NULL,
            name text NOT NULL,
            version bigint NOT NULL,
            dimension integer,
            document_count integer NOT NULL DEFAULT 0,
            chunk_count integer NOT NULL DEFAULT 0,
            -- BM25 statistics for the tsvector engine: chunks with a term, and their terms
            indexed_chunks integer NOT NULL DEFAULT 0,
            indexed_terms bigint NOT NULL DEFAULT 0,
            created_at timestamptz NOT NULL DEFAULT now(),
            UNIQUE (tenant, name)
        )"""
    )
    conn.execute(
        """CREATE TABLE documents (
            pk bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            id text NOT NULL,
            collection_id bigint NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
            source text NOT NULL,
            title text,
            mime_type text NOT NULL,
            content_hash text NOT NULL,
            pipeline_hash text NOT NULL,
            metadata jsonb NOT NULL DEFAULT '{}',
            chunk_count integer NOT NULL,
            page_count integer NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            UNIQUE (collection_id, source),
            UNIQUE (collection_id, id)
        )"""
    )
    # ``embedding`` has no declared width: each collection fixes its own (by its first
    # document), and one partial HNSW index per width serves every collection of that width.
    conn.execute(
        """CREATE TABLE chunks (
            pk bigint PRIMARY KEY,  -- from chunk_keys, under the collection's row lock
            id text NOT NULL,
            collection_id bigint NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
            document_pk bigint NOT NULL REFERENCES documents (pk) ON DELETE CASCADE,
            ordinal integer NOT NULL,
            text text NOT NULL,
            text_hash text NOT NULL,
            page integer NOT NULL,
            start integer NOT NULL,
            "end" integer NOT NULL,
            token_count integer NOT NULL,
            metadata jsonb NOT NULL DEFAULT '{}',
            embedding vector NOT NULL,
            terms text NOT NULL,  -- ragserve.analysis.terms, space-separated
            term_count integer NOT NULL,
            lexemes tsvector NOT NULL,  -- the same terms, for @@ matching
            UNIQUE (collection_id, id)
        )"""
    )
    conn.execute("CREATE INDEX chunks_document ON chunks (document_pk)")
    conn.execute("CREATE INDEX chunks_lexemes ON chunks USING gin (lexemes)")
    # Which chunk keys each write removed and added, so every process can bring its
    # in-memory BM25 index up to date without reloading it; pruned per collection.
    conn.execute(
        """CREATE TABLE changes (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            collection_id bigint NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
            old_version bigint NOT NULL,
            new_version bigint NOT NULL,
            removed bigint[] NOT NULL,
            added bigint[] NOT NULL
        )"""
    )
    conn.execute("CREATE INDEX changes_collection ON changes (collection_id, new_version)")


@migration
def m002_accounts(conn: psycopg.Connection) -> None:
    # Only the SHA-256 of a key is stored; scopes are comma-separated names. Times are the
    # ISO strings the records carry, kept as given. ``seq`` orders keys created together.
    conn.execute(
        """CREATE TABLE api_keys (
            seq bigint GENERATED ALWAYS AS IDENTITY,
            key_id text PRIMARY KEY,
            tenant text NOT NULL,
            key_hash text NOT NULL,
            scopes text NOT NULL,
            name text NOT NULL DEFAULT '',
            created_at text NOT NULL,
            revoked_at text
        )"""
    )
    conn.execute("CREATE INDEX api_keys_tenant ON api_keys (tenant)")
    conn.execute(
        """CREATE TABLE usage (
            tenant text NOT NULL,
            day text NOT NULL,  -- YYYY-MM-DD (UTC)
            questions bigint NOT NULL DEFAULT 0,
            searches bigint NOT NULL DEFAULT 0,
            prompt_tokens bigint NOT NULL DEFAULT 0,
            completion_tokens bigint NOT NULL DEFAULT 0,
            documents bigint NOT NULL DEFAULT 0,
            chunks bigint NOT NULL DEFAULT 0,
            PRIMARY KEY (tenant, day)
        )"""
    )
    conn.execute(
        """CREATE TABLE tenant_llm (
            tenant text PRIMARY KEY,
            base_url text NOT NULL,
            model text NOT NULL,
            api_key_encrypted text,  -- a Fernet token, never the key itself
            updated_at text NOT NULL
        )"""
    )


@migration
def m003_jobs(conn: psycopg.Connection) -> None:
    # Background jobs (see store/jobs.py for the state machine). ``seq`` orders listings; times
    # come from the database's clock, so leases mean the same to every machine.
    conn.execute(
        """CREATE TABLE jobs (
            seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            id text NOT NULL UNIQUE,
            tenant text NOT NULL,
            kind text NOT NULL,
            collection text NOT NULL,
            state text NOT NULL CHECK (
                state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')
            ),
            payload jsonb NOT NULL DEFAULT '{}',
            result jsonb,
            error text,
            progress double precision NOT NULL DEFAULT 0,
            attempts integer NOT NULL DEFAULT 0,
            max_attempts integer NOT NULL,
            batch_id text,
            worker text,
            lease_until timestamptz,
            cancel_requested boolean NOT NULL DEFAULT false,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            started_at timestamptz,
            finished_at timestamptz
        )"""
    )
    conn.execute("CREATE INDEX jobs_tenant ON jobs (tenant, seq)")
    conn.execute("CREATE INDEX jobs_batch ON jobs (batch_id) WHERE batch_id IS NOT NULL")
    # What the reconciler scans: running jobs by lease, queued jobs by last update.
    conn.execute("CREATE INDEX jobs_state ON jobs (state, lease_until, updated_at)")


@migration
def m004_experiments(conn: psycopg.Connection) -> None:
    # Pipeline configurations, experiments, query outcomes, feedback and evaluation runs (see
    # store/experiments.py). Times come from the database's clock; ``seq`` orders rows of one
    # instant in listings.
    conn.execute(
        """CREATE TABLE pipeline_configs (
            tenant text NOT NULL,
            name text NOT NULL,
            version integer NOT NULL CHECK (version >= 1),
            config jsonb NOT NULL,
            config_hash text NOT NULL,
            index_hash text NOT NULL,
            description text NOT NULL DEFAULT '',
            created_at timestamptz NOT NULL,
            PRIMARY KEY (tenant, name, version)
        )"""
    )
    conn.execute(
        """CREATE TABLE experiments (
            seq bigint GENERATED ALWAYS AS IDENTITY,
            id text PRIMARY KEY,
            tenant text NOT NULL,
            name text NOT NULL,
            collection text NOT NULL,
            variants jsonb NOT NULL,
            subject text NOT NULL CHECK (subject IN ('user', 'key')),
            state text NOT NULL CHECK (
                state IN ('draft', 'running', 'paused', 'stopped', 'promoted')
            ),
            winner text,
            description text NOT NULL DEFAULT '',
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            started_at timestamptz,
            stopped_at timestamptz,
            UNIQUE (tenant, name)
        )"""
    )
    # At most one active experiment per collection, even when replicas race to start two.
    conn.execute(
        "CREATE UNIQUE INDEX experiments_active ON experiments (tenant, collection) "
        "WHERE state IN ('running', 'paused')"
    )
    conn.execute(
        """CREATE TABLE query_outcomes (
            seq bigint GENERATED ALWAYS AS IDENTITY,
            id text PRIMARY KEY,
            tenant text NOT NULL,
            collection text NOT NULL,
            config_hash text NOT NULL,
            experiment_id text,
            variant text,
            subject_hash text,
            stages_ms jsonb NOT NULL DEFAULT '{}',
            prompt_tokens integer NOT NULL DEFAULT 0,
            completion_tokens integer NOT NULL DEFAULT 0,
            cached boolean NOT NULL DEFAULT false,
            sources_found boolean NOT NULL DEFAULT false,
            abstained boolean NOT NULL DEFAULT false,
            created_at timestamptz NOT NULL
        )"""
    )
    conn.execute(
        "CREATE INDEX query_outcomes_experiment "
        "ON query_outcomes (tenant, experiment_id, created_at)"
    )
    conn.execute("CREATE INDEX query_outcomes_tenant ON query_outcomes (tenant, created_at)")
    conn.execute(
        """CREATE TABLE feedback (
            answer_id text PRIMARY KEY REFERENCES query_outcomes (id) ON DELETE CASCADE,
            tenant text NOT NULL,
            kind text NOT NULL CHECK (kind IN ('thumbs', 'score')),
            value integer NOT NULL CHECK (
                (kind = 'thumbs' AND value IN (0, 1)) OR (kind = 'score' AND value BETWEEN 1 AND 5)
            ),
            comment text,
            created_at timestamptz NOT NULL
        )"""
    )
    conn.execute(
        """CREATE TABLE eval_runs (
            seq bigint GENERATED ALWAYS AS IDENTITY,
            id text PRIMARY KEY,
            tenant text NOT NULL,
            kind text NOT NULL,
            dataset text NOT NULL,
            dataset_fingerprint text NOT NULL,
            config_hash text NOT NULL,
            config jsonb NOT NULL,
            metrics jsonb NOT NULL,
            per_query jsonb NOT NULL,
            timing jsonb NOT NULL,
            label text NOT NULL DEFAULT '',
            config_name text,
            experiment_id text,
            variant text,
            created_at timestamptz NOT NULL
        )"""
    )
    conn.execute("CREATE INDEX eval_runs_tenant ON eval_runs (tenant, created_at)")


@migration
def m005_collection_config(conn: psycopg.Connection) -> None:
    # The stored pipeline configuration a collection uses (NULL: the server's own). Set in
    # the same transaction as an index swap, so the configuration and the index match.
    conn.execute("ALTER TABLE collections ADD COLUMN config_name text")
    conn.execute("ALTER TABLE collections ADD COLUMN config_version integer")


@migration
def m006_users(conn: psycopg.Connection) -> None:
    # Username-and-password logins (see store/accounts.py): usernames are global login names,
    # each mapped to one tenant. Only a scrypt hash is stored; scopes are comma-separated.
    # Times are ISO strings as in api_keys; ``seq`` orders users created together.
    conn.execute(
        """CREATE TABLE users (
            seq bigint GENERATED ALWAYS AS IDENTITY,
            username text PRIMARY KEY,
            tenant text NOT NULL,
            password_hash text NOT NULL,
            scopes text NOT NULL,
            created_at text NOT NULL,
            password_changed_at text NOT NULL,
            disabled_at text,
            failed_logins integer NOT NULL DEFAULT 0 CHECK (failed_logins >= 0),
            locked_until text
        )"""
    )
    conn.execute("CREATE INDEX users_tenant ON users (tenant)")


@migration
def m007_key_expiry(conn: psycopg.Connection) -> None:
    # Login sessions are API keys that expire (ISO 8601 UTC); NULL: a key that does not.
    conn.execute("ALTER TABLE api_keys ADD COLUMN expires_at text")
