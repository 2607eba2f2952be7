"""``ragserve users``: username-and-password logins, each mapped to one tenant and its scopes.

Usernames are global login names (unique across the store, stored lowercase). Passwords are
never taken as arguments (they would land in shell history and ``ps``): they are typed twice at
a hidden prompt, or read from the first line of stdin with ``--password-stdin``. Only a scrypt
hash is stored. Exit codes: 0 done, 1 operational error, 2 bad input (a weak password, a bad
name, a taken username, an unknown user).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ragserve.cli_common import DataDir, JsonOpt, err, fail, guard, load_settings, out
from ragserve.errors import Conflict, InvalidQuery
from ragserve.security.keys import parse_scopes
from ragserve.security.passwords import change_password, create_user, normalize_username
from ragserve.store import open_store
from ragserve.store.accounts import AccountStore, UserRecord

users_app = typer.Typer(
    help="Create, list and disable username-and-password logins (stored as scrypt hashes).",
    no_args_is_help=True,
)

UsernameArg = Annotated[str, typer.Argument(help="The login name (unique across tenants).")]
PasswordStdinOpt = Annotated[
    bool,
    typer.Option("--password-stdin", help="Read the password from the first line of stdin."),
]


@users_app.command("create")
def users_create(
    username: UsernameArg,
    tenant: Annotated[str, typer.Option("--tenant", help="The tenant the user acts for.")],
    scopes: Annotated[str, typer.Option("--scopes", help="Comma-separated: read,write,admin.")],
    password_stdin: PasswordStdinOpt = False,
    data_dir: DataDir = None,
) -> None:
    """Create a login; the password is prompted for twice (hidden) or read from stdin."""
    granted = guard(lambda: parse_scopes(scopes))
    name = guard(lambda: normalize_username(username))
    password = _read_password(password_stdin)
    with _accounts(data_dir) as accounts:

        def create() -> UserRecord:
            try:
                return create_user(accounts, name, password, tenant=tenant, scopes=granted)
            except Conflict as exc:  # a taken name is the caller's input to change: exit 2
                raise InvalidQuery(str(exc)) from exc

        record = guard(create)
    err.print(
        f"created user {record.username!r} for tenant {record.tenant!r} with scopes "
        f"{','.join(record.scopes)}",
        highlight=False,
    )


@users_app.command("list")
def users_list(
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="Only this tenant's users.")
    ] = None,
    as_json: JsonOpt = False,
    data_dir: DataDir = None,
) -> None:
    """List logins (names, tenants, scopes, state; never the password hashes)."""
    with _accounts(data_dir) as accounts:
        records = guard(lambda: accounts.list_users(tenant))
    if as_json:
        print(json.dumps([asdict(r) | {"password_hash": None} for r in records]))
        return
    table = Table("username", "tenant", "scopes", "created", "disabled", "locked until")
    for r in records:
        table.add_row(
            r.username, r.tenant, ",".join(r.scopes), r.created_at, r.disabled_at or "",
            r.locked_until or "",
        )  # fmt: skip
    out.print(table)


@users_app.command("disable")
def users_disable(username: UsernameArg, data_dir: DataDir = None) -> None:
    """Disable a login for good: its password stops working (disabling again is a no-op)."""
    name = guard(lambda: normalize_username(username))
    with _accounts(data_dir) as accounts:
        record = guard(lambda: accounts.disable_user(name))
    err.print(f"disabled user {record.username!r} of tenant {record.tenant!r}", highlight=False)


@users_app.command("passwd")
def users_passwd(
    username: UsernameArg, password_stdin: PasswordStdinOpt = False, data_dir: DataDir = None
) -> None:
    """Set a new password (prompted twice, or from stdin); this also lifts a login lock."""
    name = guard(lambda: normalize_username(username))
    with _accounts(data_dir) as accounts:
        if guard(lambda: accounts.get_user(name)) is None:  # before asking for a password
            fail(f"user {name!r} not found", 2)
        password = _read_password(password_stdin)
        record = guard(lambda: change_password(accounts, name, password))
    err.print(f"changed the password of user {record.username!r}", highlight=False)


def _read_password(from_stdin: bool) -> str:
    """The first line of stdin, or the same entry typed twice at a hidden prompt."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        fail("no terminal to prompt for the password; pipe it in with --password-stdin", 2)
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    return password


@contextmanager
def _accounts(data_dir: Path | None) -> Iterator[AccountStore]:
    settings = load_settings(data_dir)
    store = guard(lambda: open_store(settings.store.model_copy(update={"url": settings.store_url})))
    try:
        yield store.accounts
    finally:
        store.close()
