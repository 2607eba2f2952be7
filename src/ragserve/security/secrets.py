"""Encryption at rest for tenants' credentials (their LLM API keys), and the secret behind it."""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ragserve.config import Settings
from ragserve.errors import ConfigError

SECRET_FILE = "secret.key"
_INFO = b"ragserve tenant credentials v1"


class SecretCipher:
    """Fernet (AES-128-CBC + HMAC-SHA256, random IV) under a key derived from the secret with
    HKDF-SHA256, so the configured secret can be any long random string."""

    def __init__(self, secret: str) -> None:
        if not secret:
            raise ConfigError("the secret that encrypts credentials must not be empty")
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO)
        self._fernet = Fernet(base64.urlsafe_b64encode(derived.derive(secret.encode())))

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode("ascii")

    def decrypt(self, token: str) -> str:
        """Raises ``ConfigError`` when the token was not made with this secret (or is damaged)."""
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise ConfigError(
                "cannot decrypt a stored credential: security.secret_key changed? "
                "set it back or re-enter the tenant's LLM key"
            ) from exc


def load_or_create_secret(settings: Settings) -> str:
    """``security.secret_key`` when set; otherwise the secret in ``<data_dir>/secret.key``,
    generated on first use (mode 0600). Concurrent first users all end up with one secret."""
    if settings.security.secret_key is not None:
        return settings.security.secret_key.get_secret_value()
    path = settings.data_dir / SECRET_FILE
    if not path.exists():
        _create_secret_file(path)
    secret = path.read_text(encoding="utf-8").strip()
    if not secret:
        raise ConfigError(
            f"{path} is empty: restore it from a backup, or delete it to generate a new secret "
            "(tenants' stored LLM keys must then be entered again)"
        )
    return secret


def _create_secret_file(path: Path) -> None:
    """Write a new secret to a private temporary file, then link it into place: a hard link
    never replaces an existing file, so the first process to get there wins."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(secrets.token_urlsafe(48) + "\n")
            file.flush()
            os.fsync(file.fileno())
        with contextlib.suppress(FileExistsError):  # another process created it first
            os.link(temp, path)
    finally:
        temp.unlink(missing_ok=True)
