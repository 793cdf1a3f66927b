"""Statements on realms, portal users, sessions, API keys, the audit log and the flags."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, case, delete, func, insert, select, update

from ..tables import api_keys, audit_events, realms, service_flags, sessions, users

__all__ = [
    "add_failed_signin",
    "api_key_by_hash",
    "api_keys_of",
    "audit_events_of",
    "clear_failed_signins",
    "delete_expired_sessions",
    "delete_session",
    "delete_sessions_of",
    "flag",
    "insert_api_key",
    "insert_audit_event",
    "insert_realm",
    "insert_session",
    "insert_user",
    "realm_by_id",
    "realm_by_name",
    "realms_by_name",
    "revoke_api_key",
    "session_user",
    "set_daily_quota",
    "set_flag",
    "set_user_disabled",
    "user_by_id",
    "user_by_name",
    "username_in_realm",
    "users_of",
]


def _pk(result: Any) -> int:
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


# --- realms ---------------------------------------------------------------------------


def insert_realm(conn: Connection, name: str, daily_quota: int, created_at: int) -> int:
    """Create a realm; its id. IntegrityError if the name is taken."""
    res = conn.execute(
        insert(realms).values(name=name, daily_quota=daily_quota, created_at=created_at)
    )
    return _pk(res)


def realm_by_name(conn: Connection, name: str) -> Any:
    """The realm row called ``name``, or None."""
    return conn.execute(select(realms).where(realms.c.name == name)).first()


def realm_by_id(conn: Connection, realm_id: int) -> Any:
    """The realm row with this id, or None."""
    return conn.execute(select(realms).where(realms.c.id == realm_id)).first()


def realms_by_name(conn: Connection) -> list[Any]:
    """Every realm row, by name."""
    return list(conn.execute(select(realms).order_by(realms.c.name)).all())


def set_daily_quota(conn: Connection, realm_id: int, quota: int) -> None:
    """Change a realm's daily code quota."""
    conn.execute(update(realms).where(realms.c.id == realm_id).values(daily_quota=quota))


# --- users ----------------------------------------------------------------------------


def insert_user(conn: Connection, **values: Any) -> int:
    """Create a portal account (the columns of its table); its id. IntegrityError if the
    username is taken."""
    return _pk(conn.execute(insert(users).values(**values)))


def users_of(conn: Connection, realm_id: int) -> list[Any]:
    """The realm's user rows, by username."""
    return list(
        conn.execute(
            select(users).where(users.c.realm_id == realm_id).order_by(users.c.username)
        ).all()
    )


def user_by_id(conn: Connection, user_id: int) -> Any:
    """The user row with this id, or None."""
    return conn.execute(select(users).where(users.c.id == user_id)).first()


def user_by_name(conn: Connection, username: str) -> Any:
    """The user row with this username, or None."""
    return conn.execute(select(users).where(users.c.username == username)).first()


def username_in_realm(conn: Connection, realm_id: int, user_id: int) -> str | None:
    """The username of the realm's user ``user_id``, or None."""
    row = conn.execute(
        select(users.c.username).where(users.c.id == user_id, users.c.realm_id == realm_id)
    ).first()
    return None if row is None else str(row.username)


def set_user_disabled(conn: Connection, user_id: int, disabled: bool) -> None:
    """Disable or re-enable an account."""
    conn.execute(update(users).where(users.c.id == user_id).values(disabled=disabled))


def clear_failed_signins(conn: Connection, user_id: int) -> None:
    """Reset the failed sign-in counter and lift a lock-out."""
    conn.execute(
        update(users).where(users.c.id == user_id).values(failed_signins=0, locked_until=None)
    )


def add_failed_signin(conn: Connection, user_id: int, max_failures: int, locked_until: int) -> int:
    """Count a failed sign-in with one atomic UPDATE; the counter after it.

    The failure that reaches ``max_failures`` locks the account until ``locked_until`` and
    starts the count again (0). Both SET expressions read the row as it was before this
    update, so the decision and the write cannot be separated.
    """
    reached = users.c.failed_signins + 1 >= max_failures
    return int(
        conn.execute(
            update(users)
            .where(users.c.id == user_id)
            .values(
                failed_signins=case((reached, 0), else_=users.c.failed_signins + 1),
                locked_until=case((reached, locked_until), else_=users.c.locked_until),
            )
            .returning(users.c.failed_signins)
        ).scalar_one()
    )


# --- sessions -------------------------------------------------------------------------


def delete_expired_sessions(conn: Connection, now: int) -> None:
    """Delete the sessions expired at ``now``."""
    conn.execute(delete(sessions).where(sessions.c.expires_at <= now))


def insert_session(conn: Connection, **values: Any) -> None:
    """Store a session (its hash, user, times)."""
    conn.execute(insert(sessions).values(**values))


def session_user(conn: Connection, session_hash: str, now: int) -> Any:
    """The user row of the session with this hash, if it is live at ``now``; or None."""
    return conn.execute(
        select(users)
        .join(sessions, sessions.c.user_id == users.c.id)
        .where(sessions.c.session_hash == session_hash, sessions.c.expires_at > now)
    ).first()


def delete_session(conn: Connection, session_hash: str) -> None:
    """Delete the session with this hash."""
    conn.execute(delete(sessions).where(sessions.c.session_hash == session_hash))


def delete_sessions_of(conn: Connection, user_id: int) -> None:
    """Delete every session of a user."""
    conn.execute(delete(sessions).where(sessions.c.user_id == user_id))


# --- API keys -------------------------------------------------------------------------


def insert_api_key(conn: Connection, **values: Any) -> int:
    """Store an API key (hash and prefix only); its id."""
    return _pk(conn.execute(insert(api_keys).values(**values)))


def api_keys_of(conn: Connection, realm_id: int) -> list[Any]:
    """The realm's API key rows, by id."""
    return list(
        conn.execute(
            select(api_keys).where(api_keys.c.realm_id == realm_id).order_by(api_keys.c.id)
        ).all()
    )


def revoke_api_key(conn: Connection, realm_id: int, key_id: int, now: int) -> bool:
    """Revoke a live API key of the realm; ``False`` if there is none such."""
    res = conn.execute(
        update(api_keys)
        .where(
            api_keys.c.id == key_id,
            api_keys.c.realm_id == realm_id,
            api_keys.c.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )
    return bool(res.rowcount == 1)


def api_key_by_hash(conn: Connection, key_hash: str) -> Any:
    """(id, realm_id) of the unrevoked API key with this hash, or None."""
    return conn.execute(
        select(api_keys.c.id, api_keys.c.realm_id).where(
            api_keys.c.key_hash == key_hash, api_keys.c.revoked_at.is_(None)
        )
    ).first()


# --- audit log and flags --------------------------------------------------------------


def insert_audit_event(conn: Connection, **values: Any) -> None:
    """Append one event to the audit log."""
    conn.execute(insert(audit_events).values(**values))


def audit_events_of(conn: Connection, realm_id: int, limit: int) -> list[Any]:
    """The realm's newest ``limit`` audit events, newest first."""
    return list(
        conn.execute(
            select(audit_events)
            .where(audit_events.c.realm_id == realm_id)
            .order_by(audit_events.c.id.desc())
            .limit(limit)
        ).all()
    )


def flag(conn: Connection, name: str) -> str | None:
    """The value of a service flag, or None when it was never set."""
    value = conn.execute(select(service_flags.c.value).where(service_flags.c.name == name)).scalar()
    return None if value is None else str(value)


def set_flag(conn: Connection, name: str, value: str) -> None:
    """Set a service flag (updated when stored, else inserted)."""
    exists = conn.execute(
        select(func.count()).select_from(service_flags).where(service_flags.c.name == name)
    ).scalar_one()
    if exists:
        conn.execute(update(service_flags).where(service_flags.c.name == name).values(value=value))
    else:
        conn.execute(insert(service_flags).values(name=name, value=value))
