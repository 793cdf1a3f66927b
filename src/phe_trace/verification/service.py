"""The verification service: one object composing accounts, codes and signing keys.

The device API and the portal call this; it owns the clock, so every "now" comes from
one place (tests pass a :class:`~phe_trace.clock.ManualClock`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from sqlalchemy import Connection, Engine

from phe_trace.clock import Clock, SystemClock
from phe_trace.crypto import SealError
from phe_trace.protocol.errors import TekHmacError
from phe_trace.protocol.tekmac import TEK_HMAC_LENGTH, decode_base64

from .accounts import Accounts
from .codes import CodeStore, accepted_test_types
from .database import init_lock, log_on_commit, make_engine, migrate, retry_once
from .errors import (
    ConfigurationError,
    HmacInvalidError,
    MaintenanceModeError,
    UnauthorizedError,
    VerificationError,
)
from .keyring import Keyring, load_secret
from .logs import DeviceApiTally
from .models import IssuedCode, User, VerifiedCode
from .ratelimit import RateLimiter
from .settings import VerificationSettings
from .signing import SigningKeys, make_certificate

__all__ = ["VerificationService"]


def _prepare_url(settings: VerificationSettings) -> str:
    url = settings.effective_database_url
    if not settings.database_url:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    return url


class VerificationService:
    """Everything the verification service does, storage included."""

    def __init__(
        self,
        settings: VerificationSettings,
        *,
        clock: Clock | None = None,
        engine: Engine | None = None,
        run_migrations: bool = True,
    ) -> None:
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.engine = engine or make_engine(_prepare_url(settings))
        log_on_commit(self.engine)  # account and portal events are logged as they commit
        #: The device API's outcomes, logged in hourly sums (VER-17).
        self.device_log = DeviceApiTally()
        self.keyring = Keyring.from_secret(load_secret(settings))
        self.signing = SigningKeys(self.engine, self.keyring.sealing_key)
        with init_lock(self.engine):  # several workers may start at once
            if run_migrations:
                migrate(self.engine)
            self.signing.ensure_active(self.clock.now())
        self.accounts = Accounts(self.engine, self.keyring, settings, self.clock)
        self.codes = CodeStore(self.engine, self.keyring, settings)
        try:
            self.signing.active()  # fail at start-up, not per request, on a wrong secret
        except SealError:
            raise ConfigurationError(
                "the server secret does not open the stored signing key "
                "(PHE_TRACE_VERIFICATION_SECRET or the secret file changed)"
            ) from None
        self.verify_limiter = RateLimiter(
            settings.verify_rate_limit, settings.verify_rate_window_seconds
        )
        #: The key server's released key counts when it runs in this process (set by the
        #: host); the portal's community statistics read them without a URL.
        self.local_key_counts: Callable[[], list[dict[str, Any]]] | None = None

    def close(self) -> None:
        """Write the device API's last counts; release the database connections."""
        self.device_log.close()
        self.engine.dispose()

    # --- device API -----------------------------------------------------------------

    def check_open(self) -> None:
        """Raise ``maintenance_mode`` while maintenance mode is on."""
        if self.accounts.maintenance_mode():
            raise MaintenanceModeError("the service is in maintenance mode; try again later")

    def authorize_app(self, api_key: str | None) -> tuple[int, int]:
        """``(api_key_id, realm_id)`` for a live ``X-API-Key``, else ``unauthorized``."""
        found = self.accounts.api_key_realm(api_key or "")
        if found is None:
            raise UnauthorizedError("missing or invalid API key")
        return found

    def admit(self, api_key: str | None) -> tuple[int, int]:
        """The checks every device-API request passes first, chaff included (VER-15).

        ``(api_key_id, realm_id)``; ``unauthorized``, ``maintenance_mode``, or
        ``unavailable`` when the database fails twice. Reads only, retried once.
        """

        def attempt(_retry: bool) -> tuple[int, int]:
            found = self.authorize_app(api_key)
            self.check_open()
            return found

        return retry_once(attempt)

    def verify(self, api_key: str | None, code: str, accept: list[str] | None) -> VerifiedCode:
        """``POST /api/verify``: a code in, a single-use token out (VER-2 … VER-4)."""
        try:
            key_id, realm_id = self.admit(api_key)
            now = self.clock.now()
            self.verify_limiter.hit(key_id, now)
            accepted = accepted_test_types(accept)
            verified = self.codes.verify(realm_id, code, accepted, now)
        except VerificationError as exc:
            self.device_log.count("verify", exc.code)
            raise
        self.device_log.count("verify", "ok")
        return verified

    def certificate(self, api_key: str | None, token: str, ekeyhmac: str) -> str:
        """``POST /api/certificate``: token + TEK HMAC in, ES256 certificate out (VER-5 … 7)."""
        try:
            certificate = self._certificate(api_key, token, ekeyhmac)
        except VerificationError as exc:
            self.device_log.count("certificate", exc.code)
            raise
        self.device_log.count("certificate", "ok")
        return certificate

    def _certificate(self, api_key: str | None, token: str, ekeyhmac: str) -> str:
        _, realm_id = self.admit(api_key)
        try:
            mac = decode_base64(ekeyhmac, name="ekeyhmac")
        except TekHmacError:
            raise HmacInvalidError("ekeyhmac is not valid base64") from None
        if len(mac) != TEK_HMAC_LENGTH:
            raise HmacInvalidError(
                f"ekeyhmac must decode to {TEK_HMAC_LENGTH} bytes, got {len(mac)}"
            )
        now = self.clock.now()
        # The signing key before the token is used: nothing may fail after the claim.
        kid, key = retry_once(lambda _retry: self.signing.active())
        row = self.codes.claim_token(realm_id, token, now)
        return make_certificate(
            private_key=key,
            kid=kid,
            issuer=self.settings.issuer,
            audience=self.settings.audience,
            now=now,
            skew_seconds=self.settings.allowed_clock_skew_seconds,
            lifetime_seconds=self.settings.certificate_minutes * 60,
            report_type=row.test_type,
            tekmac=ekeyhmac,
            symptom_date=row.symptom_date,
            test_date=row.test_date,
        )

    # --- portal ---------------------------------------------------------------------

    def issue_code(
        self, user: User, test_type: str, test_date: date | None, symptom_date: date | None
    ) -> IssuedCode:
        """Issue a code as ``user`` (quota, maintenance mode, audit log) (VER-1, VER-11).

        The code and its audit entry are one transaction, retried once on a dropped
        connection without issuing twice (VER-15).
        """
        retry_once(lambda _retry: self.check_open())
        now = self.clock.now()

        def record(conn: Connection, code_uuid: str) -> None:
            self.accounts.record(
                conn, user.realm_id, user.username, "code.issue", f"code {code_uuid} ({test_type})"
            )

        return self.codes.issue(user.realm_id, now, test_type, test_date, symptom_date, record)
