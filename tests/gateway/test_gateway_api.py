"""The federation gateway over real HTTP: upload, refusals, download, audit, retention."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import httpx
import sqlalchemy as sa

from phe_trace.clock import SettableClock
from phe_trace.gateway.routes import MAX_BODY_BYTES
from phe_trace.gateway.service import Gateway
from phe_trace.gateway.tables import certificates, keys
from phe_trace.protocol import efgs, efgs_cms
from tests.gateway.support import Country, make_cert, pem

DAY = "2026-06-01"


def _refused(answer: httpx.Response, status: int, code: str) -> None:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["code"] == code and isinstance(body["error"], str)


def _stored(gw: Gateway) -> int:
    with gw.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(keys)).scalar_one())


def test_upload_then_other_members_download_it(
    client: httpx.Client, gateway: Gateway, countries: dict[str, Country]
) -> None:
    """FED-1, FED-8: a DE batch (protobuf) is answered 201 with its tag; after batching FR
    downloads exactly those keys in either form, DE gets an empty batch (never its own)."""
    de, fr = countries["DE"], countries["FR"]
    batch = [de.key() for _ in range(5)]
    answer = de.upload(client, batch, "de-1")
    assert answer.status_code == 201 and answer.headers["batchTag"] == "de-1"
    assert fr.download(client, DAY).status_code == 404  # not batched yet
    assert gateway.form_batches() == ["20260601-1"]
    page = fr.download(client, DAY)
    assert page.status_code == 200
    assert page.headers["batchTag"] == "20260601-1" and page.headers["nextBatchTag"] == "null"
    assert efgs.decode_protobuf(page.content) == batch
    as_json = fr.download(client, DAY, json_form=True)
    assert as_json.headers["content-type"].startswith("application/json")
    assert efgs.decode_json(as_json.content) == batch
    assert efgs.decode_protobuf(de.download(client, DAY).content) == []


def test_json_upload_and_batches_follow_next_batch_tag(
    client: httpx.Client, gateway: Gateway, countries: dict[str, Country]
) -> None:
    """FED-1, FED-8: JSON uploads are accepted; upload batches are never split and a new
    download batch starts when the next would pass the limit (100 keys here); the client
    follows nextBatchTag from the day's first batch to "null"."""
    de, fr = countries["DE"], countries["FR"]
    uploads = [[de.key() for _ in range(40)] for _ in range(3)]
    for i, batch in enumerate(uploads):
        assert de.upload(client, batch, f"t{i}", json_form=True).status_code == 201
    assert gateway.form_batches() == ["20260601-1", "20260601-2"]
    assert fr.upload(client, [fr.key()], "fr-1").status_code == 201
    assert gateway.form_batches() == ["20260601-3"]
    seen: list[efgs.BatchKey] = []
    tag: str | None = None
    tags: list[str] = []
    while True:
        page = fr.download(client, DAY, tag)
        tags.append(page.headers["batchTag"])
        seen.extend(efgs.decode_protobuf(page.content))
        tag = page.headers["nextBatchTag"]
        if tag == "null":
            break
    assert tags == ["20260601-1", "20260601-2", "20260601-3"]
    assert seen == uploads[0] + uploads[1] + uploads[2]  # FR's own key is not among them


def test_download_window_and_unknown_days(
    client: httpx.Client, gateway: Gateway, countries: dict[str, Country]
) -> None:
    """FED-8: a day older than the download window is 410, a day without batches or an
    unknown tag 404, a tag of an earlier day than the date 400, a bad date 400."""
    de, fr = countries["DE"], countries["FR"]
    de.upload(client, [de.key()], "x")
    gateway.form_batches()
    _refused(fr.download(client, "2026-05-29"), 410, "gone")
    _refused(fr.download(client, "2026-05-31"), 404, "not_found")
    _refused(fr.download(client, DAY, "20260601-9"), 404, "not_found")
    _refused(fr.download(client, "2026-06-02", "20260601-1"), 400, "batch_rejected")
    _refused(fr.download(client, "yesterday"), 400, "batch_rejected")


def test_refusals_with_the_gateway_statuses(
    client: httpx.Client, gateway: Gateway, countries: dict[str, Country]
) -> None:
    """FED-4, FED-6, FED-7: a signer not on the allow-list, another member's signing
    certificate, an origin that is not the uploader's, a tampered key, an out-of-range key
    (400); more keys than allowed (413); a reused batch tag (409). Nothing is stored."""
    de, fr = countries["DE"], countries["FR"]
    batch = [de.key() for _ in range(3)]
    stranger_cert, stranger_key = make_cert("DE")
    stranger = Country("DE", de.auth_cert, stranger_cert, stranger_key)
    _refused(de.upload(client, batch, signature=stranger.signature(batch)), 400, "batch_rejected")
    _refused(de.upload(client, batch, signature=fr.signature(batch)), 400, "batch_rejected")
    foreign = [de.key(origin="FR")]
    _refused(de.upload(client, foreign), 400, "batch_rejected")
    tampered = [*batch[:2], efgs.BatchKey(**{**_fields(batch[2]), "rolling_period": 100})]
    sig = de.signature(batch)
    _refused(de.upload(client, tampered, signature=sig), 400, "batch_rejected")
    short = [efgs.BatchKey(**{**_fields(batch[0]), "key_data": b"x" * 15})]
    _refused(de.upload(client, short), 400, "batch_rejected")
    _refused(de.upload(client, [de.key() for _ in range(51)]), 413, "batch_too_large")
    _refused(de.upload(client, []), 400, "batch_rejected")
    assert _stored(gateway) == 0
    assert de.upload(client, batch, "once").status_code == 201
    _refused(de.upload(client, [de.key()], "once"), 409, "batch_tag_reused")
    assert _stored(gateway) == 3


def _fields(key: efgs.BatchKey) -> dict[str, object]:
    return {f: getattr(key, f) for f in efgs.BatchKey.__slots__}


def test_duplicate_keys_answer_207_and_store_nothing(
    client: httpx.Client, gateway: Gateway, countries: dict[str, Country]
) -> None:
    """FED-7: a batch holding a key already stored (or twice) is answered 207 with the
    indexes that could be stored ("201") and those that conflict ("409"); nothing of it is
    stored; re-sent without the conflicting keys under a new tag it is stored."""
    de = countries["DE"]
    first = [de.key(), de.key()]
    assert de.upload(client, first, "a").status_code == 201
    fresh = de.key()
    second = [fresh, first[1], fresh]
    answer = de.upload(client, second, "b")
    assert answer.status_code == 207
    assert answer.json() == {"201": [0], "409": [1, 2], "500": []}
    assert _stored(gateway) == 2
    assert de.upload(client, [fresh], "c").status_code == 201
    assert _stored(gateway) == 3


def test_authentication_by_forwarded_client_certificate(
    client: httpx.Client, gateway: Gateway, countries: dict[str, Country], operator: object
) -> None:
    """FED-5: no headers, an unknown thumbprint, a DN of another country, and an allow-list
    row that the operator did not countersign are all 403; the Base64 form of the
    thumbprint is accepted like hex."""
    de, nl = countries["DE"], countries["NL"]
    headers = de.headers()
    _refused(client.get("/diagnosiskeys/callback"), 403, "not_authenticated")
    _refused(client.get("/diagnosiskeys/callback", headers=nl.headers()), 403, "not_authenticated")
    wrong_dn = {**headers, "X-SSL-Client-DN": "C%3DFR%2CCN%3Dx"}
    _refused(client.get("/diagnosiskeys/callback", headers=wrong_dn), 403, "not_authenticated")
    raw = bytes.fromhex(headers["X-SSL-Client-SHA256"])
    b64 = {**headers, "X-SSL-Client-SHA256": base64.b64encode(raw).decode()}
    assert client.get("/diagnosiskeys/callback", headers=b64).status_code == 200
    with gateway.engine.begin() as conn:  # a row written without the trust-anchor key
        conn.execute(
            certificates.insert().values(
                thumbprint=efgs_cms.certificate_thumbprint(nl.auth_cert),
                country="NL",
                type="AUTHENTICATION",
                revoked=False,
                pem=pem(nl.auth_cert),
                operator_signature=base64.b64encode(b"forged").decode(),
                created_at=0,
            )
        )
    _refused(client.get("/diagnosiskeys/callback", headers=nl.headers()), 403, "not_authenticated")


def test_bad_media_types_and_bodies_are_4xx(
    client: httpx.Client, countries: dict[str, Country]
) -> None:
    """FED-1: an unknown content type is 406; a body that is not a batch is 400."""
    de = countries["DE"]
    headers = {**de.headers(), "batchTag": "t", "batchSignature": "AA=="}
    answer = client.post(
        "/diagnosiskeys/upload", content=b"x", headers={**headers, "Content-Type": "text/plain"}
    )
    _refused(answer, 406, "unsupported_media_type")
    for media, body in ((efgs.CONTENT_TYPE_JSON, b"{"), (efgs.CONTENT_TYPE_PROTOBUF, b"\xff\xff")):
        answer = client.post(
            "/diagnosiskeys/upload", content=body, headers={**headers, "Content-Type": media}
        )
        _refused(answer, 400, "batch_rejected")
    _refused(client.get("/nothing-here"), 404, "not_found")


def test_a_body_over_the_limit_is_batch_too_large(
    client: httpx.Client, gateway: Gateway, countries: dict[str, Country]
) -> None:
    """FED-6: an upload body over the gateway's limit is 413 batch_too_large, whether its
    length is declared (refused unread) or it is streamed (cut off at the limit); nothing
    is stored and the member's next upload goes through."""
    de = countries["DE"]
    headers = {
        **de.headers(),
        "batchTag": "big",
        "batchSignature": "AA==",
        "Content-Type": efgs.CONTENT_TYPE_PROTOBUF,
    }
    big = b"\x00" * (MAX_BODY_BYTES + 1)

    def streamed() -> Iterator[bytes]:
        for start in range(0, len(big), 1 << 20):
            yield big[start : start + (1 << 20)]

    for content in (big, streamed()):
        answer = client.post("/diagnosiskeys/upload", content=content, headers=headers)
        _refused(answer, 413, "batch_too_large")
    assert _stored(gateway) == 0
    assert de.upload(client, [de.key() for _ in range(3)], "after").status_code == 201
    assert _stored(gateway) == 3


def test_audit_lets_a_member_reverify_each_upload_batch(
    client: httpx.Client, gateway: Gateway, countries: dict[str, Country], operator: object
) -> None:
    """FED-9: the audit lists each upload batch of a download batch with its country, key
    count, CMS signature and countersigned certificates; the downloader re-verifies the
    signature over those keys and the operator's signature over the certificate."""
    de, fr = countries["DE"], countries["FR"]
    de_keys, fr_keys = [de.key() for _ in range(3)], [fr.key() for _ in range(2)]
    de.upload(client, de_keys, "de")
    fr.upload(client, fr_keys, "fr")
    tag = gateway.form_batches()[0]
    answer = client.get(f"/diagnosiskeys/audit/download/{DAY}/{tag}", headers=fr.headers())
    entries = answer.json()
    assert [(e["country"], e["amount"]) for e in entries] == [("DE", 3), ("FR", 2)]
    entry = entries[0]
    from cryptography import x509

    signing = x509.load_pem_x509_certificate(entry["signingCertificate"].encode())
    assert gateway.anchor.verifies(
        entry["signingCertificate"], entry["signingCertificateOperatorSignature"]
    )
    downloaded = efgs.decode_protobuf(fr.download(client, DAY).content)
    signer = efgs_cms.verify_batch(
        efgs.batch_signing_bytes(downloaded[: entry["amount"]]),
        base64.b64decode(entry["batchSignature"]),
        gateway.now(),
    )
    assert signer == signing and efgs_cms.certificate_country(signer) == "DE"


def test_retention_deletes_keys_after_three_days(
    client: httpx.Client, gateway: Gateway, countries: dict[str, Country], clock: SettableClock
) -> None:
    """FED-10: keys are deleted three days after they were stored, not before."""
    de = countries["DE"]
    de.upload(client, [de.key(), de.key()], "r")
    clock.t += 3 * 86_400 - 1
    assert gateway.apply_retention() == 0
    clock.t += 2
    assert gateway.apply_retention() == 2
    assert _stored(gateway) == 0
