"""Realms, portal users, sessions, API keys, the audit log and service flags (storage side).

The statements are in :mod:`.storage.accounts`; the rules (names, the password policy,
lock-outs, the audit entry of each change) are here. Secrets are stored only as
keyed hashes (:class:`~.keyring.Keyring`); passwords only as Argon2id hashes.
"""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from phe_trace.clock import Clock

from .errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    SignInError,
)
from .keyring import Keyring
from .logs import log_event, note
from .models import ApiKey, AuditEvent, Realm, User
from .passwords import check_password_policy, hash_password, verify_password
from .settings import VerificationSettings
from .storage import accounts as queries

__all__ = ["API_KEY_PREFIX", "Accounts", "InvalidInputError"]

#: Every API key starts with this, so leaked keys are recognisable by secret scanners.
API_KEY_PREFIX = "phev1_"
_MAINTENANCE_FLAG = "maintenance_mode"
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-@")


def check_name(kind: str, name: str) -> str:
    """``name`` stripped, if it is 1–100 letters, digits or . _ - @ (no spaces)."""
    name = name.strip()
    if not 1 <= len(name) <= 100 or not set(name) <= _NAME_CHARS:
        raise InvalidInputError(
            f"{kind} must be 1–100 characters of letters, digits, . _ - @ (no spaces)"
        )
    return name


def _user(row: Any) -> User:
    return User(
        id=row.id,
        realm_id=row.realm_id,
        username=row.username,
        is_admin=bool(row.is_admin),
        disabled=bool(row.disabled),
        locked_until=row.locked_until,
    )


class Accounts:
    """Realms, users, sessions, API keys, audit log and flags."""

    def __init__(
        self, engine: Engine, keyring: Keyring, settings: VerificationSettings, clock: Clock
    ) -> None:
        self._engine = engine
        self._keyring = keyring
        self._settings = settings
        self._clock = clock
        # Verified against for unknown users, so sign-in time does not reveal who exists.
        self._dummy_hash = hash_password(secrets.token_urlsafe(16), settings.password_strength)

    def _now(self) -> int:
        return int(self._clock.now().timestamp())

    # --- realms ---------------------------------------------------------------------

    def create_realm(self, name: str, daily_quota: int | None = None) -> Realm:
        """Create a realm; ``daily_quota`` defaults to the settings' default quota."""
        name = check_name("realm name", name)
        quota = self._settings.default_daily_quota if daily_quota is None else daily_quota
        if quota < 0:
            raise InvalidInputError("daily quota must be >= 0")
        try:
            with self._engine.begin() as conn:
                realm_id = queries.insert_realm(conn, name, quota, self._now())
        except IntegrityError:
            raise ConflictError(f"realm {name!r} already exists") from None
        return Realm(id=realm_id, name=name, daily_quota=quota)

    def realm_by_name(self, name: str) -> Realm | None:
        """The realm called ``name``, if any."""
        with self._engine.connect() as conn:
            row = queries.realm_by_name(conn, name)
        return None if row is None else Realm(row.id, row.name, row.daily_quota)

    def realm(self, realm_id: int) -> Realm:
        """The realm with id ``realm_id``."""
        with self._engine.connect() as conn:
            row = queries.realm_by_id(conn, realm_id)
        if row is None:
            raise NotFoundError(f"realm {realm_id} does not exist")
        return Realm(row.id, row.name, row.daily_quota)

    def list_realms(self) -> list[Realm]:
        """Every realm, by name."""
        with self._engine.connect() as conn:
            rows = queries.realms_by_name(conn)
        return [Realm(r.id, r.name, r.daily_quota) for r in rows]

    def set_daily_quota(self, realm_id: int, quota: int, actor: str) -> None:
        """Change a realm's daily code quota."""
        if quota < 0:
            raise InvalidInputError("daily quota must be >= 0")
        with self._engine.begin() as conn:
            queries.set_daily_quota(conn, realm_id, quota)
            self._audit(conn, realm_id, actor, "realm.quota", f"daily quota set to {quota}")

    # --- users ----------------------------------------------------------------------

    def create_user(
        self, realm_id: int, username: str, password: str, *, is_admin: bool, actor: str
    ) -> User:
        """Create a portal account; the password must pass the policy."""
        username = check_name("username", username)
        problem = check_password_policy(password)
        if problem:
            raise InvalidInputError(problem)
        password_hash = hash_password(password, self._settings.password_strength)
        try:
            with self._engine.begin() as conn:
                user_id = queries.insert_user(
                    conn,
                    realm_id=realm_id,
                    username=username,
                    password_hash=password_hash,
                    is_admin=is_admin,
                    disabled=False,
                    failed_signins=0,
                    locked_until=None,
                    created_at=self._now(),
                )
                role = "admin" if is_admin else "case worker"
                self._audit(conn, realm_id, actor, "user.create", f"{username} ({role})")
        except IntegrityError:
            raise ConflictError(f"user {username!r} already exists") from None
        return User(user_id, realm_id, username, is_admin, False, None)

    def list_users(self, realm_id: int) -> list[User]:
        """The realm's accounts, by username."""
        with self._engine.connect() as conn:
            rows = queries.users_of(conn, realm_id)
        return [_user(r) for r in rows]

    def user(self, user_id: int) -> User:
        """The account with id ``user_id``."""
        with self._engine.connect() as conn:
            row = queries.user_by_id(conn, user_id)
        if row is None:
            raise NotFoundError(f"user {user_id} does not exist")
        return _user(row)

    def set_user_disabled(self, realm_id: int, user_id: int, disabled: bool, actor: str) -> None:
        """Disable (and sign out) or re-enable an account of the realm."""
        with self._engine.begin() as conn:
            username = queries.username_in_realm(conn, realm_id, user_id)
            if username is None:
                raise NotFoundError(f"user {user_id} does not exist in this realm")
            queries.set_user_disabled(conn, user_id, disabled)
            if disabled:
                queries.delete_sessions_of(conn, user_id)
            action = "user.disable" if disabled else "user.enable"
            self._audit(conn, realm_id, actor, action, username)

    def unlock_user(self, realm_id: int, user_id: int, actor: str) -> None:
        """Clear a lock-out and the failed sign-in counter."""
        with self._engine.begin() as conn:
            username = queries.username_in_realm(conn, realm_id, user_id)
            if username is None:
                raise NotFoundError(f"user {user_id} does not exist in this realm")
            queries.clear_failed_signins(conn, user_id)
            self._audit(conn, realm_id, actor, "user.unlock", username)

    def authenticate(self, username: str, password: str) -> User:
        """Check a sign-in; count failures and lock the account after too many (VER-12)."""
        now = self._now()
        with self._engine.connect() as conn:
            row = queries.user_by_name(conn, username)
        if row is None:
            verify_password(self._dummy_hash, password)
            log_event("user.signin_failed", realm=None)
            raise SignInError("sign-in failed")
        if row.locked_until is not None and row.locked_until > now:
            self._record_signin(row.realm_id, username, "user.signin_locked")
            raise SignInError("sign-in failed")
        if not verify_password(row.password_hash, password):
            self._fail_signin(row, now)
            raise SignInError("sign-in failed")
        if row.disabled:
            self._record_signin(row.realm_id, username, "user.signin_disabled")
            raise SignInError("sign-in failed")
        with self._engine.begin() as conn:
            queries.clear_failed_signins(conn, row.id)
            self._audit(conn, row.realm_id, username, "user.signin", "signed in")
        return _user(row)

    def _fail_signin(self, row: Any, now: int) -> None:
        """Count a failure with one atomic UPDATE (VER-12): never from a value read before.

        Parallel wrong passwords each add one; the one that reaches the maximum locks the
        account and starts the count again. Both SET expressions read the row as it was
        before this update, so the decision and the write cannot be separated.
        """
        locked_until = now + self._settings.signin_lockout_minutes * 60
        with self._engine.begin() as conn:
            failures = queries.add_failed_signin(
                conn, row.id, self._settings.signin_max_failures, locked_until
            )
            action = "user.locked" if failures == 0 else "user.signin_failed"
            self._audit(conn, row.realm_id, row.username, action, "failed sign-in")

    def _record_signin(self, realm_id: int, username: str, action: str) -> None:
        with self._engine.begin() as conn:
            self._audit(conn, realm_id, username, action, "sign-in refused")

    # --- sessions -------------------------------------------------------------------

    def create_session(self, user: User) -> str:
        """Start a portal session; returns the session id for the cookie (stored hashed)."""
        session_id = secrets.token_urlsafe(32)
        now = self._now()
        with self._engine.begin() as conn:
            queries.delete_expired_sessions(conn, now)
            queries.insert_session(
                conn,
                session_hash=self._keyring.hash_session(session_id),
                user_id=user.id,
                created_at=now,
                expires_at=now + self._settings.session_hours * 3600,
            )
        return session_id

    def session_user(self, session_id: str) -> User | None:
        """The signed-in user of a live session, or ``None``."""
        now = self._now()
        with self._engine.connect() as conn:
            row = queries.session_user(conn, self._keyring.hash_session(session_id), now)
        if row is None or row.disabled:
            return None
        return _user(row)

    def end_session(self, session_id: str, user: User) -> None:
        """Sign out: delete the session."""
        with self._engine.begin() as conn:
            queries.delete_session(conn, self._keyring.hash_session(session_id))
            self._audit(conn, user.realm_id, user.username, "user.signout", "signed out")

    # --- API keys -------------------------------------------------------------------

    def create_api_key(self, realm_id: int, name: str, actor: str) -> tuple[ApiKey, str]:
        """Create an app's API key; the clear key is returned once and stored only hashed."""
        name = check_name("API key name", name)
        clear = API_KEY_PREFIX + secrets.token_urlsafe(32)
        prefix = clear[: len(API_KEY_PREFIX) + 6]
        now = self._now()
        with self._engine.begin() as conn:
            key_id = queries.insert_api_key(
                conn,
                realm_id=realm_id,
                name=name,
                key_hash=self._keyring.hash_api_key(clear),
                key_prefix=prefix,
                created_at=now,
                revoked_at=None,
            )
            self._audit(conn, realm_id, actor, "apikey.create", f"{name} ({prefix}…)")
        return ApiKey(key_id, realm_id, name, prefix, now, None), clear

    def list_api_keys(self, realm_id: int) -> list[ApiKey]:
        """The realm's API keys (prefixes only)."""
        with self._engine.connect() as conn:
            rows = queries.api_keys_of(conn, realm_id)
        return [
            ApiKey(r.id, r.realm_id, r.name, r.key_prefix, r.created_at, r.revoked_at) for r in rows
        ]

    def revoke_api_key(self, realm_id: int, key_id: int, actor: str) -> None:
        """Revoke an API key of the realm; it stops working at once."""
        with self._engine.begin() as conn:
            if not queries.revoke_api_key(conn, realm_id, key_id, self._now()):
                raise NotFoundError(f"active API key {key_id} does not exist in this realm")
            self._audit(conn, realm_id, actor, "apikey.revoke", f"key {key_id}")

    def api_key_realm(self, clear: str) -> tuple[int, int] | None:
        """``(api_key_id, realm_id)`` of a live API key, or ``None``."""
        if not clear or len(clear) > 200:
            return None
        with self._engine.connect() as conn:
            row = queries.api_key_by_hash(conn, self._keyring.hash_api_key(clear))
        return None if row is None else (int(row.id), int(row.realm_id))

    # --- audit log and flags --------------------------------------------------------

    def _audit(
        self, conn: Connection, realm_id: int | None, actor: str, action: str, detail: str
    ) -> None:
        queries.insert_audit_event(
            conn,
            realm_id=realm_id,
            actor=actor,
            action=action,
            detail=detail,
            created_at=self._now(),
        )
        note(conn, action, realm_id)  # logged with the commit, without actor or detail

    def record(
        self, conn: Connection, realm_id: int | None, actor: str, action: str, detail: str
    ) -> None:
        """Append one event to the audit log within the caller's transaction ``conn``."""
        self._audit(conn, realm_id, actor, action, detail)

    def audit(self, realm_id: int | None, actor: str, action: str, detail: str) -> None:
        """Append one event to the audit log."""
        with self._engine.begin() as conn:
            self._audit(conn, realm_id, actor, action, detail)

    def audit_log(self, realm_id: int, limit: int = 200) -> list[AuditEvent]:
        """The realm's newest audit events first."""
        with self._engine.connect() as conn:
            rows = queries.audit_events_of(conn, realm_id, limit)
        return [AuditEvent(r.actor, r.action, r.detail, r.created_at) for r in rows]

    def maintenance_mode(self) -> bool:
        """True if maintenance mode is on (settings or the run-time flag)."""
        if self._settings.maintenance_mode:
            return True
        with self._engine.connect() as conn:
            value = queries.flag(conn, _MAINTENANCE_FLAG)
        return value == "on"

    def set_maintenance_mode(self, on: bool, actor: str) -> None:
        """Switch the run-time maintenance flag."""
        value = "on" if on else "off"
        with self._engine.begin() as conn:
            queries.set_flag(conn, _MAINTENANCE_FLAG, value)
            self._audit(conn, None, actor, "service.maintenance", value)
