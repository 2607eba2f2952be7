"""The credential cipher and the server secret behind it."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import pytest
from pydantic import SecretStr

from ragserve.config import SecuritySettings, Settings
from ragserve.errors import ConfigError
from ragserve.security.secrets import SECRET_FILE, SecretCipher, load_or_create_secret

SECRET = "x" * 40


def settings_for(data_dir: Path, secret_key: str | None = None) -> Settings:
    security = SecuritySettings(secret_key=None if secret_key is None else SecretStr(secret_key))
    return Settings(data_dir=data_dir, security=security)


@pytest.mark.parametrize("plaintext", ["sk-abc123", "", "ünïcødé 🔑", "x" * 10_000])
def test_round_trip(plaintext: str) -> None:
    """Decrypting what was encrypted, with the same secret, gives the plaintext back."""
    cipher = SecretCipher(SECRET)
    assert cipher.decrypt(cipher.encrypt(plaintext)) == plaintext
    assert SecretCipher(SECRET).decrypt(cipher.encrypt(plaintext)) == plaintext


def test_ciphertext_hides_the_plaintext_and_never_repeats() -> None:
    """The token does not contain the plaintext, and two encryptions differ."""
    cipher = SecretCipher(SECRET)
    first, second = cipher.encrypt("sk-abc123"), cipher.encrypt("sk-abc123")
    assert "sk-abc123" not in first
    assert first != second


@pytest.mark.parametrize("token", ["not a token", "", "gAAAAA"])
def test_wrong_secret_or_damaged_token_is_a_config_error(token: str) -> None:
    """A token made under another secret, or garbage, cannot be decrypted, and says why."""
    made_elsewhere = SecretCipher("y" * 40).encrypt("sk-abc123")
    cipher = SecretCipher(SECRET)
    for bad in (made_elsewhere, token):
        with pytest.raises(ConfigError, match=r"security\.secret_key changed"):
            cipher.decrypt(bad)


def test_empty_secret_is_refused() -> None:
    """An empty secret would make encryption pointless."""
    with pytest.raises(ConfigError, match="must not be empty"):
        SecretCipher("")


def test_secret_file_is_created_private_and_reused(tmp_path: Path) -> None:
    """Without a configured secret one is generated into a 0600 file and read back later."""
    data_dir = tmp_path / "data"
    first = load_or_create_secret(settings_for(data_dir))
    path = data_dir / SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= 60
    assert load_or_create_secret(settings_for(data_dir)) == first
    assert [p.name for p in data_dir.iterdir()] == [SECRET_FILE]


def test_configured_secret_wins(tmp_path: Path) -> None:
    """An explicit security.secret_key is used as is and no file is written."""
    configured = "k" * 48
    assert load_or_create_secret(settings_for(tmp_path, configured)) == configured
    assert not (tmp_path / SECRET_FILE).exists()


def test_concurrent_first_use_agrees_on_one_secret(tmp_path: Path) -> None:
    """Several callers creating the file at once all get the secret that landed on disk."""
    results: list[str] = []
    barrier = threading.Barrier(8)

    def load() -> None:
        barrier.wait()
        results.append(load_or_create_secret(settings_for(tmp_path)))

    threads = [threading.Thread(target=load) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8
    assert set(results) == {(tmp_path / SECRET_FILE).read_text().strip()}
    assert [p.name for p in tmp_path.iterdir()] == [SECRET_FILE]


def test_empty_secret_file_is_a_config_error(tmp_path: Path) -> None:
    """An emptied secret file is refused rather than silently replaced."""
    (tmp_path / SECRET_FILE).write_text("")
    with pytest.raises(ConfigError, match="is empty"):
        load_or_create_secret(settings_for(tmp_path))
