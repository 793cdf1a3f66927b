"""Storage of the verification service: every SQL statement its domain modules run.

:mod:`.codes` holds codes, tokens and the daily statistics, :mod:`.accounts` realms,
users, sessions, API keys, the audit log and the service flags, :mod:`.signing_keys`
the certificate signing keys. Each function runs its statements on the caller's
connection, inside the caller's transaction; the rules (what may be claimed, when a
retry recognises its own first attempt, lock-outs) stay in the domain modules.
"""
