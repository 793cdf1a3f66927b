"""Constant-time comparison of a secret received in an HTTP header (SPEC AGG-32).

``hmac.compare_digest`` refuses ``str`` arguments holding non-ASCII characters with a
``TypeError``; a header is bytes on the wire, so both sides are compared as bytes. The
ASGI servers decode header bytes as Latin-1, which :func:`bearer_matches` undoes.
"""

from __future__ import annotations

import hmac

__all__ = ["bearer_matches", "same_text"]


def same_text(given: str, expected: str) -> bool:
    """Whether two strings are equal, compared in constant time as UTF-8 bytes.

    Lone surrogates (which JSON and form decoding may produce) are encoded, not refused.
    """
    return hmac.compare_digest(
        given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )


def bearer_matches(authorization: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header value is ``Bearer <token>``, in constant time.

    ``authorization`` is the header as the ASGI server decoded it (Latin-1); ``token`` is
    the configured secret, sent by clients as UTF-8.
    """
    if authorization is None:
        return False
    try:
        received = authorization.encode("latin-1")
    except UnicodeEncodeError:  # not a header value any server could have decoded
        return False
    return hmac.compare_digest(received, b"Bearer " + token.encode("utf-8", "surrogatepass"))
