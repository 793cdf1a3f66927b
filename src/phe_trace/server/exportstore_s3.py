"""An :class:`~phe_trace.server.exportstore.ExportStore` on S3-compatible object storage.

SPEC §11 (PUB-33, PUB-36 … PUB-39). Zips are created with a conditional put
(``If-None-Match: *``): of two workers writing the same name, or a worker retrying a write
that already succeeded, exactly one put succeeds and the other is refused with
``412 Precondition Failed`` — a published file is never overwritten. ``index.txt`` is
replaced by a plain put, which S3 applies atomically per object (a reader sees the old
index or the new one, never a mix). Each object carries the ``Cache-Control`` and
``Content-Type`` a CDN in front serves it with.

Credentials, and the signing region when none is configured, come from the standard AWS
chain (``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``,
``AWS_PROFILE`` and ``~/.aws``, instance or container roles, ``AWS_REGION``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from .errors import ExportStoreError, ExportStoreUnavailableError, ServerConfigError
from .exportstore import check_object_name, object_headers

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from .settings import ServerSettings

__all__ = ["S3ExportStore"]

#: Answers meaning "no such object" (GET gives a code, HEAD only the status).
_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})
#: A conditional put refused because the object exists.
_EXISTS = frozenset({"PreconditionFailed", "412"})
#: A conditional put that met a concurrent write of the same name: try again (S3 docs).
_CONFLICT = frozenset({"ConditionalRequestConflict", "409"})
_CONFLICT_RETRIES = 5


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3ExportStore:
    """Export objects as keys ``<prefix>/<region>/<file>`` in one bucket."""

    def __init__(self, client: S3Client, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    @classmethod
    def from_settings(cls, settings: ServerSettings) -> S3ExportStore:
        """The store the ``PHE_TRACE_EXPORT_S3_*`` settings describe."""
        if not settings.export_s3_bucket:
            raise ServerConfigError("PHE_TRACE_EXPORT_S3_BUCKET is not set")
        config = Config(
            s3={"addressing_style": settings.export_s3_addressing},
            retries={"max_attempts": 5, "mode": "standard"},
            connect_timeout=10,
            read_timeout=60,
        )
        client: S3Client = boto3.session.Session().client(
            "s3",
            endpoint_url=settings.export_s3_endpoint_url,
            region_name=settings.export_s3_region,
            config=config,
        )
        return cls(client, settings.export_s3_bucket, settings.export_s3_prefix)

    def key_of(self, name: str) -> str:
        """The object key of export object ``name``."""
        name = check_object_name(name)
        return f"{self.prefix}/{name}" if self.prefix else name

    def _put(self, name: str, data: bytes, **conditions: Any) -> None:
        cache_control, content_type = object_headers(name)
        self.client.put_object(
            Bucket=self.bucket,
            Key=self.key_of(name),
            Body=data,
            CacheControl=cache_control,
            ContentType=content_type,
            **conditions,
        )

    def create(self, name: str, data: bytes) -> bool:
        """Conditional put; ``False`` when the object already exists (PUB-36)."""
        for attempt in range(_CONFLICT_RETRIES):
            try:
                self._put(name, data, IfNoneMatch="*")
                return True
            except ClientError as exc:
                code = _code(exc)
                if code in _EXISTS:
                    return False
                if code not in _CONFLICT:
                    raise ExportStoreUnavailableError(f"S3 put failed: {code}") from None
                time.sleep(0.05 * 2**attempt)
            except BotoCoreError as exc:
                raise ExportStoreUnavailableError(f"S3 put failed: {exc}") from None
        raise ExportStoreUnavailableError("S3 put kept meeting a concurrent write")

    def replace(self, name: str, data: bytes) -> None:
        """Unconditional put: S3 replaces an object atomically (PUB-37)."""
        try:
            self._put(name, data)
        except (ClientError, BotoCoreError) as exc:
            raise ExportStoreUnavailableError(f"S3 put failed: {exc}") from None

    def read(self, name: str) -> bytes:
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self.key_of(name))
            return answer["Body"].read()
        except ClientError as exc:
            if _code(exc) in _MISSING:
                raise ExportStoreError(f"export object {name} does not exist") from None
            raise ExportStoreUnavailableError(f"S3 get failed: {_code(exc)}") from None
        except BotoCoreError as exc:
            raise ExportStoreUnavailableError(f"S3 get failed: {exc}") from None

    def exists(self, name: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self.key_of(name))
            return True
        except ClientError as exc:
            if _code(exc) in _MISSING:
                return False
            raise ExportStoreUnavailableError(f"S3 head failed: {_code(exc)}") from None
        except BotoCoreError as exc:
            raise ExportStoreUnavailableError(f"S3 head failed: {exc}") from None

    def delete(self, name: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.key_of(name))
        except (ClientError, BotoCoreError) as exc:
            raise ExportStoreUnavailableError(f"S3 delete failed: {exc}") from None

    def names(self, region: str) -> list[str]:
        """Every object name under ``region/``, sorted (for index reconciliation)."""
        head = f"{self.prefix}/" if self.prefix else ""
        prefix = self.key_of(f"{region}/index.txt").rsplit("/", 1)[0] + "/"
        found: list[str] = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            )
            for page in pages:
                found.extend(item["Key"][len(head) :] for item in page.get("Contents", ()))
        except (ClientError, BotoCoreError) as exc:
            raise ExportStoreUnavailableError(f"S3 list failed: {exc}") from None
        return sorted(found)

    def path_of(self, name: str) -> Path | None:
        """Never a local path: objects are served by the bucket or the CDN."""
        check_object_name(name)
        return None
