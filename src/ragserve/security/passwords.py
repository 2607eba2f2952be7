"""Passwords of user logins: scrypt hashes, the password policy, and checking a login.

A hash is ``scrypt$n$r$p$salt$key`` (salt and key in unpadded base64), so the cost can be raised
later: ``needs_rehash`` says a stored hash is below the current cost, and a successful login
stores a fresh one. Checking an unknown, disabled or locked username spends the same scrypt work
as a wrong password and answers the same ``None``, so neither the answer nor its time tells
which usernames exist. Usernames are global login names (lowercase), each mapped to one tenant.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import unicodedata
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from ragserve.errors import InvalidQuery
from ragserve.security.keys import Principal, check_tenant, parse_scopes
from ragserve.store.accounts import AccountStore, UserRecord
from ragserve.store.schema import utc_now

SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
KEY_BYTES = 32
MIN_LENGTH = 12
MAX_LENGTH = 1024
LOCK_AFTER = 5
"""Failed logins in a row that lock a login for ``LOCK_SECONDS``."""
LOCK_SECONDS = 300
_USERNAME_SHAPE = re.compile(r"[a-z0-9][a-z0-9._@+-]{0,63}")
# Bounds on parameters read back from a stored hash: a tampered row cannot ask for gigabytes.
_MAX_N, _MAX_R, _MAX_P = 2**20, 32, 16
# Verifying against this costs the same scrypt work as a real hash; no password derives zeros.
_DUMMY_HASH = "$".join(
    ("scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P),
     base64.b64encode(bytes(SALT_BYTES)).decode().rstrip("="),
     base64.b64encode(bytes(KEY_BYTES)).decode().rstrip("="))
)  # fmt: skip


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """A salted scrypt hash of ``password`` with its parameters, as ``scrypt$n$r$p$salt$key``."""
    salt = secrets.token_bytes(SALT_BYTES)
    key = _derive(password, salt, n, r, p, KEY_BYTES)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches ``encoded``, compared in constant time; a malformed or
    tampered hash (bad shape, out-of-bounds parameters) never matches."""
    parsed = _parse(encoded)
    if parsed is None:
        return False
    n, r, p, salt, key = parsed
    return hmac.compare_digest(key, _derive(password, salt, n, r, p, len(key)))


def needs_rehash(encoded: str) -> bool:
    """Whether ``encoded`` is not a hash with the current parameters (store a fresh one)."""
    parsed = _parse(encoded)
    current = (SCRYPT_N, SCRYPT_R, SCRYPT_P, KEY_BYTES)
    return parsed is None or (*parsed[:3], len(parsed[4])) != current


def check_password(password: str) -> str:
    """``password`` itself when it is 12-1024 characters and not only whitespace; raises
    ``InvalidQuery`` saying what to change (never echoing the password)."""
    if not password.strip():
        raise InvalidQuery("the password must not be empty or only whitespace")
    if len(password) < MIN_LENGTH:
        raise InvalidQuery(f"the password is too short: use at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise InvalidQuery(f"the password is too long: use at most {MAX_LENGTH} characters")
    return password


def normalize_username(username: str) -> str:
    """The login name as stored: trimmed, lowercase, 1-64 of letters, digits, ``._@+-``."""
    name = username.strip().lower()
    if not _USERNAME_SHAPE.fullmatch(name):
        raise InvalidQuery(
            f"invalid username {username!r}: use 1-64 letters, digits, '.', '_', '@', '+' "
            "or '-', starting with a letter or digit"
        )
    return name


def create_user(
    accounts: AccountStore, username: str, password: str, *, tenant: str, scopes: Iterable[str]
) -> UserRecord:
    """Store a new login after checking every input; raises ``InvalidQuery`` or ``Conflict``
    (the username is taken, in any tenant)."""
    now = utc_now()
    record = UserRecord(
        normalize_username(username), check_tenant(tenant),
        hash_password(check_password(password)), parse_scopes(",".join(scopes)), now, now,
    )  # fmt: skip
    accounts.create_user(record)
    return record


def change_password(accounts: AccountStore, username: str, password: str) -> UserRecord:
    """Store a new password (policy checked) and lift any lock; raises ``NotFoundError``."""
    return accounts.set_password(
        normalize_username(username), hash_password(check_password(password))
    )


def verify_user(
    accounts: AccountStore,
    username: str,
    password: str,
    *,
    lock_after: int = LOCK_AFTER,
    lock_seconds: float = LOCK_SECONDS,
) -> Principal | None:
    """The principal of an active, unlocked login whose password matches, else ``None``.

    A wrong password counts towards a lock of ``lock_seconds`` after ``lock_after`` failures in
    a row. The principal's ``key_id`` is ``user:<username>``: per-caller rate limits and
    experiment subjects keep users apart from API keys (whose ids have no ``:``).
    """
    try:
        name = normalize_username(username)
    except InvalidQuery:
        name = ""  # matches no row: the same work as an unknown username
    record = accounts.get_user(name)
    matches = verify_password(password, record.password_hash if record else _DUMMY_HASH)
    if record is None or not matches:
        # An unknown name updates no row, yet costs the same write as a wrong password.
        until = datetime.now(UTC) + timedelta(seconds=lock_seconds)
        accounts.record_failed_login(
            name, lock_after=lock_after, lock_until=until.isoformat(timespec="milliseconds")
        )
        return None
    if not record.active or record.locked(utc_now()):
        return None
    if record.failed_logins:
        accounts.clear_failed_logins(name)
    if needs_rehash(record.password_hash):  # the only moment the plaintext is at hand
        accounts.set_password(name, hash_password(password))
    return Principal(record.tenant, f"user:{name}", frozenset(record.scopes))


def _derive(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    # NFC: the same password typed on different systems gives the same bytes.
    secret = unicodedata.normalize("NFC", password).encode()
    maxmem = 128 * r * (n + p + 2) + 1024 * 1024  # scrypt's working set, plus headroom
    return hashlib.scrypt(secret, salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=length)


def _parse(encoded: str) -> tuple[int, int, int, bytes, bytes] | None:
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != "scrypt" or not all(s.isdigit() for s in parts[1:4]):
        return None
    n, r, p = (int(s) for s in parts[1:4])
    if not (1 < n <= _MAX_N and n & (n - 1) == 0 and 0 < r <= _MAX_R and 0 < p <= _MAX_P):
        return None
    try:
        salt, key = _unb64(parts[4]), _unb64(parts[5])
    except (binascii.Error, ValueError):
        return None
    if len(salt) < 8 or not 16 <= len(key) <= 64:
        return None
    return n, r, p, salt, key


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
