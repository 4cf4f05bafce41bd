"""The bytes path of one process: digests from chunks, and how S3 requests are signed."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import pytest
from awscrt import checksums
from pydantic import SecretStr

from sunset.preservation.store import (
    DIGEST_LAG_CHUNKS,
    PARALLEL_HASH_MIN,
    DigestStream,
    crc64nvme_b64,
    make_s3_client,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "sizes",
    [
        [10, 20],  # small chunks only: hashed inline
        [PARALLEL_HASH_MIN, 5, PARALLEL_HASH_MIN * 2, 1],  # small ones after the lanes start
        [3, PARALLEL_HASH_MIN + 1] * (DIGEST_LAG_CHUNKS + 2),  # lanes full, caller waits
        [0, PARALLEL_HASH_MIN * 4, 0],
    ],
)
def test_digests_of_chunks_are_those_of_the_whole_file(sizes: list[int]) -> None:
    chunks = [os.urandom(size) for size in sizes]
    whole = b"".join(chunks)
    stream = DigestStream()
    for chunk in chunks:
        stream.update(chunk)
    digests = stream.result()
    assert digests.size == len(whole)
    assert digests.sha256 == hashlib.sha256(whole).hexdigest()
    assert digests.sha512 == hashlib.sha512(whole).hexdigest()
    assert digests.crc64nvme == crc64nvme_b64(checksums.crc64nvme(whole))


def _signed_payload(endpoint: str | None) -> str:
    """The x-amz-content-sha256 an UploadPart to ``endpoint`` is sent with (nothing is sent)."""
    client = make_s3_client(endpoint, "us-east-1", "key", SecretStr("secret"))

    def capture(request: Any, **_: Any) -> None:
        raise _Signed(request.headers["x-amz-content-sha256"])

    client.meta.events.register("before-send.s3.UploadPart", capture)
    body = b"part bytes"
    with pytest.raises(_Signed) as signed:
        client.upload_part(
            Bucket="b",
            Key="k",
            UploadId="u",
            PartNumber=1,
            Body=body,
            ChecksumCRC64NVME=crc64nvme_b64(checksums.crc64nvme(body)),
        )
    header = signed.value.args[0]
    return header.decode() if isinstance(header, bytes) else str(header)


class _Signed(Exception):
    """Stops a request at the moment it would be sent, carrying its payload header."""


def test_a_body_sent_over_tls_is_not_hashed_into_the_signature() -> None:
    assert _signed_payload("https://s3.example.test") == "UNSIGNED-PAYLOAD"
    assert _signed_payload(None) == "UNSIGNED-PAYLOAD"


def test_a_body_sent_over_plain_http_stays_signed() -> None:
    assert _signed_payload("http://127.0.0.1:8333") == hashlib.sha256(b"part bytes").hexdigest()
