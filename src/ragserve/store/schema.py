"""The SQLite schema as named, ordered migrations, each applied once and recorded in ``migrations``.

Append new migrations at the end; never edit or reorder one that has shipped. Per-collection
FTS5 tables (``fts_<collection id>``) are created with their collection, not here.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime

Migration = Callable[[sqlite3.Connection], None]

MIGRATIONS: list[tuple[str, Migration]] = []


def migration(fn: Migration) -> Migration:
    """Register ``fn`` as the next migration, named after the function."""
    MIGRATIONS.append((fn.__name__, fn))
    return fn


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply pending migrations in one write transaction; returns the names applied.

    ``BEGIN IMMEDIATE`` makes concurrent openers of a new file wait for each other instead of
    racing to create the same tables.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS migrations "
            "(name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
        done = {name for (name,) in conn.execute("SELECT name FROM migrations")}
        applied = []
        for name, fn in MIGRATIONS:
            if name in done:
                continue
            fn(conn)
            conn.execute(
                "INSERT INTO migrations (name, applied_at) VALUES (?, ?)", (name, utc_now())
            )
            applied.append(name)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return applied


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def fts_table(collection_id: int) -> str:
    """Name of a collection's FTS5 table; built from the integer id only, so it is safe SQL."""
    return f"fts_{int(collection_id)}"


def create_fts_table(conn: sqlite3.Connection, collection_id: int) -> None:
    """One FTS5 table per collection: BM25 statistics per collection, isolation per tenant.

    Rows hold text already analysed by ``ragserve.analysis.terms`` (space-separated); the
    ``ascii`` tokenizer with ``_`` as a token character splits it back into exactly those terms
    (every non-ASCII character is a token character).
    """
    conn.execute(
        f"CREATE VIRTUAL TABLE IF NOT EXISTS {fts_table(collection_id)} "
        "USING fts5(terms, tokenize = \"ascii tokenchars '_'\")"
    )


@migration
def m001_initial(conn: sqlite3.Connection) -> None:
    # The version counter is store-wide so that (tenant, collection, version) never repeats,
    # even when a collection is deleted and created again under the same name.
    conn.execute("CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)")
    conn.execute("INSERT INTO counters (name, value) VALUES ('version', 0), ('chunk', 0)")
    # AUTOINCREMENT: a collection id (and so its FTS table and cached matrix) is never reused.
    conn.execute(
        """CREATE TABLE collections (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            tenant TEXT NOT NULL,
            name TEXT NOT NULL,
            version INTEGER NOT NULL,
            dimension INTEGER,
            document_count INTEGER NOT NULL DEFAULT 0,
            chunk_count INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            UNIQUE (tenant, name)
        )"""
    )
    conn.execute(
        """CREATE TABLE documents (
            pk INTEGER PRIMARY KEY,
            id TEXT NOT NULL,
            collection_id INTEGER NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
            source TEXT NOT NULL,
            title TEXT,
            mime_type TEXT NOT NULL,
            content_hash TEXT NOT NULL,
            pipeline_hash TEXT NOT NULL,
            metadata TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata)),
            chunk_count INTEGER NOT NULL,
            page_count INTEGER NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            UNIQUE (collection_id, source),
            UNIQUE (collection_id, id)
        )"""
    )
    conn.execute(
        """CREATE TABLE chunks (
            pk INTEGER PRIMARY KEY,  -- from counters 'chunk': never reused
            id TEXT NOT NULL,
            collection_id INTEGER NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
            document_pk INTEGER NOT NULL REFERENCES documents (pk) ON DELETE CASCADE,
            ordinal INTEGER NOT NULL,
            text TEXT NOT NULL,
            text_hash TEXT NOT NULL,
            page INTEGER NOT NULL,
            start INTEGER NOT NULL,
            "end" INTEGER NOT NULL,
            token_count INTEGER NOT NULL,
            metadata TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata)),
            vector BLOB NOT NULL,
            UNIQUE (collection_id, id)
        )"""
    )
    conn.execute("CREATE INDEX chunks_document ON chunks (document_pk)")
    # Rows of one collection in pk order: how the vector matrix is loaded.
    conn.execute("CREATE INDEX chunks_collection ON chunks (collection_id)")
    # Filters read these two narrow indexes instead of the wide chunk rows (text + vector):
    # scanning a collection by page (dense search), and looking up keyword matches by key.
    conn.execute("CREATE INDEX chunks_page ON chunks (collection_id, page, document_pk)")
    conn.execute("CREATE INDEX chunks_keys ON chunks (pk, document_pk, page)")
    # Which chunk keys each write removed and added (int64 little-endian BLOBs), so that every
    # process can bring its in-memory matrix up to date without reloading it; pruned to the
    # most recent writes.
    conn.execute(
        """CREATE TABLE changes (
            id INTEGER PRIMARY KEY,
            collection_id INTEGER NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
            old_version INTEGER NOT NULL,
            new_version INTEGER NOT NULL,
            removed BLOB NOT NULL,
            added BLOB NOT NULL
        )"""
    )
    conn.execute("CREATE INDEX changes_collection ON changes (collection_id, new_version)")


@migration
def m002_accounts(conn: sqlite3.Connection) -> None:
    # Only the SHA-256 of a key is stored; scopes are comma-separated names.
    conn.execute(
        """CREATE TABLE api_keys (
            key_id TEXT PRIMARY KEY,
            tenant TEXT NOT NULL,
            key_hash TEXT NOT NULL,
            scopes TEXT NOT NULL,
            name TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL,
            revoked_at TEXT
        )"""
    )
    conn.execute("CREATE INDEX api_keys_tenant ON api_keys (tenant)")
    conn.execute(
        """CREATE TABLE usage (
            tenant TEXT NOT NULL,
            day TEXT NOT NULL,  -- YYYY-MM-DD (UTC)
            questions INTEGER NOT NULL DEFAULT 0,
            searches INTEGER NOT NULL DEFAULT 0,
            prompt_tokens INTEGER NOT NULL DEFAULT 0,
            completion_tokens INTEGER NOT NULL DEFAULT 0,
            documents INTEGER NOT NULL DEFAULT 0,
            chunks INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (tenant, day)
        )"""
    )
    conn.execute(
        """CREATE TABLE tenant_llm (
            tenant TEXT PRIMARY KEY,
            base_url TEXT NOT NULL,
            model TEXT NOT NULL,
            api_key_encrypted TEXT,  -- a Fernet token, never the key itself
            updated_at TEXT NOT NULL
        )"""
    )


@migration
def m003_jobs(conn: sqlite3.Connection) -> None:
    # Background jobs (see store/jobs.py for the state machine). ``seq`` orders listings.
    conn.execute(
        """CREATE TABLE jobs (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            tenant TEXT NOT NULL,
            kind TEXT NOT NULL,
            collection TEXT NOT NULL,
            state TEXT NOT NULL CHECK (
                state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')
            ),
            payload TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(payload)),
            result TEXT CHECK (result IS NULL OR json_valid(result)),
            error TEXT,
            progress REAL NOT NULL DEFAULT 0,
            attempts INTEGER NOT NULL DEFAULT 0,
            max_attempts INTEGER NOT NULL,
            batch_id TEXT,
            worker TEXT,
            lease_until TEXT,
            cancel_requested INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            started_at TEXT,
            finished_at TEXT
        )"""
    )
    conn.execute("CREATE INDEX jobs_tenant ON jobs (tenant, seq)")
    conn.execute("CREATE INDEX jobs_batch ON jobs (batch_id) WHERE batch_id IS NOT NULL")
    # What the reconciler scans: running jobs by lease, queued jobs by last update.
    conn.execute("CREATE INDEX jobs_state ON jobs (state, lease_until, updated_at)")


@migration
def m004_experiments(conn: sqlite3.Connection) -> None:
    # Pipeline configurations, experiments, query outcomes, feedback and evaluation runs (see
    # store/experiments.py). Listings order by created_at, then rowid for rows of one instant.
    conn.execute(
        """CREATE TABLE pipeline_configs (
            tenant TEXT NOT NULL,
            name TEXT NOT NULL,
            version INTEGER NOT NULL CHECK (version >= 1),
            config TEXT NOT NULL CHECK (json_valid(config)),
            config_hash TEXT NOT NULL,
            index_hash TEXT NOT NULL,
            description TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL,
            PRIMARY KEY (tenant, name, version)
        )"""
    )
    conn.execute(
        """CREATE TABLE experiments (
            id TEXT PRIMARY KEY,
            tenant TEXT NOT NULL,
            name TEXT NOT NULL,
            collection TEXT NOT NULL,
            variants TEXT NOT NULL CHECK (json_valid(variants)),
            subject TEXT NOT NULL CHECK (subject IN ('user', 'key')),
            state TEXT NOT NULL CHECK (
                state IN ('draft', 'running', 'paused', 'stopped', 'promoted')
            ),
            winner TEXT,
            description TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            started_at TEXT,
            stopped_at TEXT,
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
            id TEXT PRIMARY KEY,
            tenant TEXT NOT NULL,
            collection TEXT NOT NULL,
            config_hash TEXT NOT NULL,
            experiment_id TEXT,
            variant TEXT,
            subject_hash TEXT,
            stages_ms TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(stages_ms)),
            prompt_tokens INTEGER NOT NULL DEFAULT 0,
            completion_tokens INTEGER NOT NULL DEFAULT 0,
            cached INTEGER NOT NULL DEFAULT 0,
            sources_found INTEGER NOT NULL DEFAULT 0,
            abstained INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL
        )"""
    )
    conn.execute(
        "CREATE INDEX query_outcomes_experiment "
        "ON query_outcomes (tenant, experiment_id, created_at)"
    )
    conn.execute("CREATE INDEX query_outcomes_tenant ON query_outcomes (tenant, created_at)")
    conn.execute(
        """CREATE TABLE feedback (
            answer_id TEXT PRIMARY KEY REFERENCES query_outcomes (id) ON DELETE CASCADE,
            tenant TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('thumbs', 'score')),
            value INTEGER NOT NULL CHECK (
                (kind = 'thumbs' AND value IN (0, 1)) OR (kind = 'score' AND value BETWEEN 1 AND 5)
            ),
            comment TEXT,
            created_at TEXT NOT NULL
        )"""
    )
    conn.execute(
        """CREATE TABLE eval_runs (
            id TEXT PRIMARY KEY,
            tenant TEXT NOT NULL,
            kind TEXT NOT NULL,
            dataset TEXT NOT NULL,
            dataset_fingerprint TEXT NOT NULL,
            config_hash TEXT NOT NULL,
            config TEXT NOT NULL CHECK (json_valid(config)),
            metrics TEXT NOT NULL CHECK (json_valid(metrics)),
            per_query TEXT NOT NULL CHECK (json_valid(per_query)),
            timing TEXT NOT NULL CHECK (json_valid(timing)),
            label TEXT NOT NULL DEFAULT '',
            config_name TEXT,
            experiment_id TEXT,
            variant TEXT,
            created_at TEXT NOT NULL
        )"""
    )
    conn.execute("CREATE INDEX eval_runs_tenant ON eval_runs (tenant, created_at)")


@migration
def m005_collection_config(conn: sqlite3.Connection) -> None:
    # The stored pipeline configuration a collection uses (NULL: the server's own). Set in
    # the same transaction as an index swap, so the configuration and the index match.
    conn.execute("ALTER TABLE collections ADD COLUMN config_name TEXT")
    conn.execute("ALTER TABLE collections ADD COLUMN config_version INTEGER")


@migration
def m006_users(conn: sqlite3.Connection) -> None:
    # Username-and-password logins (see store/accounts.py): usernames are global login names,
    # each mapped to one tenant. Only a scrypt hash is stored; scopes are comma-separated.
    conn.execute(
        """CREATE TABLE users (
            username TEXT PRIMARY KEY,
            tenant TEXT NOT NULL,
            password_hash TEXT NOT NULL,
            scopes TEXT NOT NULL,
            created_at TEXT NOT NULL,
            password_changed_at TEXT NOT NULL,
            disabled_at TEXT,
            failed_logins INTEGER NOT NULL DEFAULT 0 CHECK (failed_logins >= 0),
            locked_until TEXT
        )"""
    )
    conn.execute("CREATE INDEX users_tenant ON users (tenant)")


@migration
def m007_key_expiry(conn: sqlite3.Connection) -> None:
    # Login sessions are API keys that expire (ISO 8601 UTC); NULL: a key that does not.
    conn.execute("ALTER TABLE api_keys ADD COLUMN expires_at TEXT")
