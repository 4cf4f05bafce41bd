"""The bytes path of one process: digests from chunks, how S3 requests are signed, and
deep checks several objects at a time."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from awscrt import checksums
from pydantic import SecretStr

from sunset.ledger import PreservedObject
from sunset.preservation.store import (
    DIGEST_LAG_CHUNKS,
    LOCK_MODE,
    PARALLEL_HASH_MIN,
    DigestStream,
    ReadBack,
    crc64nvme_b64,
    digest_bytes,
    make_s3_client,
)
from sunset.preservation.verify import deep_checks
from sunset.preservation.workers import DEEP_CHECKS_AT_ONCE, ObjectToReread, thread_workers

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
@pytest.mark.parametrize("sha512", [True, False])
def test_digests_of_chunks_are_those_of_the_whole_file(sizes: list[int], sha512: bool) -> None:
    chunks = [os.urandom(size) for size in sizes]
    whole = b"".join(chunks)
    stream = DigestStream(sha512=sha512)
    for chunk in chunks:
        stream.update(chunk)
    digests = stream.result()
    assert digests.size == len(whole)
    assert digests.sha256 == hashlib.sha256(whole).hexdigest()
    assert digests.sha512 == (hashlib.sha512(whole).hexdigest() if sha512 else None)
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


class _SlowCopy:
    """A replica whose reads take a while, counting how many run at once."""

    name, bucket = "primary", "b"

    def __init__(self, contents: dict[str, bytes]) -> None:
        self.contents = contents
        self.reading = self.most_at_once = 0
        self.lock = threading.Lock()

    def read_back(
        self, key: str, version_id: str | None = None, *, sha512: bool = True
    ) -> ReadBack:
        with self.lock:
            self.reading += 1
            self.most_at_once = max(self.most_at_once, self.reading)
        time.sleep(0.2)  # long enough that the reads overlap on a loaded machine
        with self.lock:
            self.reading -= 1
        return ReadBack(digest_bytes(self.contents[key]), LOCK_MODE, _UNTIL)


_UNTIL = datetime(2099, 1, 1, tzinfo=UTC)


class _OneCopyStore:
    """The replicated store the workers re-read through: one slow copy."""

    def __init__(self, copy: _SlowCopy) -> None:
        self.only = copy

    def copy(self, name: str) -> _SlowCopy | None:
        return self.only if name == self.only.name else None


def test_deep_checks_read_several_objects_at_once_and_report_each() -> None:
    contents = {f"p/file-{i}": os.urandom(100 + i) for i in range(10)}
    rows = []
    for i, data in enumerate(contents.values()):
        digests = digest_bytes(data if i != 6 else b"rotted")
        rows.append(
            PreservedObject(
                snapshot_id="s",
                replica="primary",
                endpoint="http://store",
                bucket="b",
                path=f"file-{i}",
                version_id=f"v{i}",
                retain_until=_UNTIL,
                size=digests.size,
                sha256=digests.sha256,
                sha512=digests.sha512,
                crc64nvme=digests.crc64nvme,
            )
        )
    copy = _SlowCopy(contents)
    store = _OneCopyStore(copy)
    rereads = [ObjectToReread("primary", "p/" + row.path, row) for row in rows]
    with thread_workers(store) as workers:  # type: ignore[arg-type]
        findings = list(deep_checks(store, workers, rereads))  # type: ignore[arg-type]
    outcomes = {f.path: f.outcome for f in findings}
    assert len(findings) == len(rows)
    assert outcomes == {row.path: "mismatch" if row.path == "file-6" else "ok" for row in rows}
    assert copy.most_at_once == DEEP_CHECKS_AT_ONCE
