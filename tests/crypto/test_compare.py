"""Secrets from headers and JSON compared as bytes, whatever their characters (AGG-32)."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from phe_trace.crypto.compare import bearer_matches, same_text
from phe_trace.protocol.certificate import CertificateError, verify_certificate


def test_bearer_matches_compares_the_header_bytes() -> None:
    """AGG-32: the header as decoded (Latin-1) equals ``Bearer`` + the token's UTF-8."""
    assert bearer_matches("Bearer token-1", "token-1")
    assert bearer_matches("Bearer tøken".encode().decode("latin-1"), "tøken")
    assert not bearer_matches("Bearer tøken", "tøken")  # not what a server decodes
    assert not bearer_matches("Bearer é", "token-1")
    assert not bearer_matches("Bearer \u20ac", "token-1")  # not Latin-1: never a header
    assert not bearer_matches(None, "token-1")
    assert not bearer_matches("token-1", "token-1")


def test_same_text_takes_lone_surrogates() -> None:
    """AGG-32: JSON may decode to lone surrogates; they compare, they do not raise."""
    assert same_text("\ud800", "\ud800")
    assert not same_text("\ud800x", "issuer")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_certificate_with_a_lone_surrogate_issuer_is_refused() -> None:
    """PUB-5: an ``iss`` of a lone surrogate is a refused certificate, not a crash."""
    header = _b64(json.dumps({"alg": "ES256", "kid": "k", "typ": "JWT"}).encode())
    payload = _b64(b'{"iss": "\\ud800", "aud": "a"}')
    token = f"{header}.{payload}.{_b64(b'x' * 64)}"
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    with pytest.raises(CertificateError):
        verify_certificate(token, public_keys=[key], issuer="issuer", audience="a", now=0.0)
