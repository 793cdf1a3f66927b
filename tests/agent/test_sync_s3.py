"""The agent follows an index and files served by an S3 bucket, not by the key server.

The export files are written by the key server's S3 store into a bucket of a real
S3-compatible server (moto) on loopback; the agent's export base URL is the bucket's
public URL (as a CDN in front of it would be), and its key-server URL points at a port
where nothing listens. SPEC SCALE-7, AGENT-13.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest

from phe_trace.protocol import export
from phe_trace.server.exportstore_s3 import S3ExportStore

from ..s3server import MotoServer
from .conftest import T0
from .exports import REGION, confirmed, export_zip, new_signer, spki
from .test_sync import DAY, NOW, _pair


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


def test_agent_downloads_from_the_bucket(make_agent, moto: MotoServer) -> None:
    """SCALE-7: index and zip fetched from the export base URL; the contact is matched."""
    a, b = _pair(make_agent)
    signer = new_signer()
    [a_key] = a.store.teks()
    bucket = moto.bucket()
    public_read = {  # what an operator grants the CDN (or everyone) on the export prefix
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{bucket}/v1/exports/*",
            }
        ],
    }
    moto.client().put_bucket_policy(Bucket=bucket, Policy=json.dumps(public_read))
    store = S3ExportStore(moto.client(), bucket, "v1/exports")
    start = int(T0 + DAY)
    name = export.export_file_name(REGION, start, start + 3600, 1)
    zip_data = export_zip(
        signer,
        [
            confirmed(a_key.key_data, a_key.rolling_start_interval_number),
            confirmed(os.urandom(16), a_key.rolling_start_interval_number),
        ],
        0,
        1,
    )
    assert store.create(name, zip_data)
    store.replace(export.index_file_name(REGION), export.format_index([name]))
    b.config = b.config.model_copy(
        update={
            "key_server_url": "http://127.0.0.1:9",  # nothing listens: exports come from S3
            "export_base_url": f"{moto.url}/{bucket}/v1/exports/",
            "export_public_keys": spki(signer),
            "download_backoff_s": 0.0,
            "download_retries": 1,
            "desktop_notifications": False,
        }
    )
    result = b.sync(NOW)
    assert result.rejected_files == {} and result.interrupted is None
    assert (result.files_checked, result.keys_checked) == (1, 2)
    assert result.matched_sightings == 12  # one hour at one sighting per 5 minutes
    again = b.sync(NOW + 3600)
    assert again.files_checked == 0
