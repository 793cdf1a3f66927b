"""The server secret and the purpose-bound keys derived from it.

One secret (``PHE_TRACE_VERIFICATION_SECRET`` or a 0600 file) is expanded with HKDF-SHA256
(:func:`phe_trace.crypto.hkdf_sha256`) into independent keys, one per purpose, so a key
used for one thing never serves another (SPEC VER-9): hashing codes and tokens, hashing
API keys, CSRF tokens, session ids, and sealing the certificate signing keys at rest.
"""

from __future__ import annotations

import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from phe_trace.crypto import SealingKey, hkdf_sha256

from .errors import ConfigurationError
from .settings import VerificationSettings

__all__ = ["Keyring", "load_secret"]

_SECRET_BYTES = 32
_HKDF_SALT = b"phe-trace/verification/v1"


def _derive(secret: bytes, purpose: str) -> bytes:
    return hkdf_sha256(secret, purpose.encode(), 32, salt=_HKDF_SALT)


def load_secret(settings: VerificationSettings) -> bytes:
    """The server secret: from the settings, else from ``secret_file`` (created if absent)."""
    if settings.secret is not None:
        return settings.secret.get_secret_value().encode("utf-8")
    path: Path = settings.effective_secret_file
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            _create_secret_file(path)
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read or create secret file {path}: {exc}") from None
    if len(data) < _SECRET_BYTES:
        raise ConfigurationError(
            f"secret file {path} holds {len(data)} bytes, need at least {_SECRET_BYTES}"
        )
    return data


def _create_secret_file(path: Path) -> None:
    """Write 32 random bytes to ``path`` (0600) atomically; a concurrent creator wins."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(os.urandom(_SECRET_BYTES))
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # fails if another process created it first
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)


@dataclass(frozen=True, slots=True)
class Keyring:
    """Purpose-bound keys derived from the server secret."""

    code_key: bytes
    token_key: bytes
    api_key_key: bytes
    csrf_key: bytes
    session_key: bytes
    sealing_key: SealingKey

    @classmethod
    def from_secret(cls, secret: bytes) -> Keyring:
        """Derive every key from ``secret`` (HKDF-SHA256, one ``info`` per purpose)."""
        return cls(
            code_key=_derive(secret, "code-hash"),
            token_key=_derive(secret, "token-hash"),
            api_key_key=_derive(secret, "api-key-hash"),
            csrf_key=_derive(secret, "csrf"),
            session_key=_derive(secret, "session-hash"),
            sealing_key=SealingKey(_derive(secret, "signing-key-seal")),
        )

    def __repr__(self) -> str:
        return "Keyring(<secret>)"

    @staticmethod
    def _mac(key: bytes, value: str) -> str:
        return hmac.new(key, value.encode("utf-8"), "sha256").hexdigest()

    def hash_code(self, code: str) -> str:
        """Keyed hash under which a verification code is stored (VER-3)."""
        return self._mac(self.code_key, code)

    def hash_token(self, token: str) -> str:
        """Keyed hash under which a verification token is stored."""
        return self._mac(self.token_key, token)

    def hash_api_key(self, api_key: str) -> str:
        """Keyed hash under which an API key is stored."""
        return self._mac(self.api_key_key, api_key)

    def hash_session(self, session_id: str) -> str:
        """Keyed hash under which a portal session id is stored."""
        return self._mac(self.session_key, session_id)

    def csrf_token(self, binding: str) -> str:
        """The CSRF token bound to a session (or pre-sign-in) cookie value."""
        return self._mac(self.csrf_key, binding)
