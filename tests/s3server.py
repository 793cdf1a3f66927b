"""A real S3-compatible server for tests: ``moto_server`` in a subprocess on a loopback port.

moto 5 answers a put with ``If-None-Match: *`` on an existing key with 412
PreconditionFailed and keeps ``Cache-Control`` / ``Content-Type`` of each object, which is
what the export store relies on. Stopped by its own PID.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from typing import Any

import boto3
import httpx
from botocore.config import Config

from phe_trace.serving import free_port

ACCESS_KEY = "phe-trace-test"
SECRET_KEY = "phe-trace-test-secret"
REGION = "us-east-1"


class MotoServer:
    """``python -m moto.server`` on 127.0.0.1; :meth:`bucket` makes a fresh bucket."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> MotoServer:
        self.process = subprocess.Popen(  # the moto package's own server entry point
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("moto server exited")
            try:
                httpx.get(self.url + "/moto-api/", timeout=1)
                return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("moto server did not start")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)

    @property
    def env(self) -> dict[str, str]:
        """Standard AWS variables for a client of this server."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": REGION,
        }

    def client(self, **config: Any) -> Any:
        """A path-style boto3 client of this server (the test's own view of the bucket)."""
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            config=Config(s3={"addressing_style": "path"}, **config),
        )

    def bucket(self) -> str:
        """Create and return a new, empty bucket."""
        name = f"exports-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name


def store_env(server: MotoServer, bucket: str) -> dict[str, str]:
    """``PHE_TRACE_EXPORT_S3_*`` and AWS variables selecting ``bucket`` on ``server``."""
    return {
        **server.env,
        "PHE_TRACE_EXPORT_S3_BUCKET": bucket,
        "PHE_TRACE_EXPORT_S3_ENDPOINT_URL": server.url,
        "PHE_TRACE_EXPORT_S3_ADDRESSING": "path",
    }
