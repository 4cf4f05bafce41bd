"""Which failures the step decorator retries: those another attempt could get past."""

from __future__ import annotations

import smtplib

import anthropic
import httpx2  # the HTTP client the anthropic SDK is built on, and its errors carry
import pytest
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    IncompleteReadError,
    ReadTimeoutError,
    ResponseStreamingError,
)

from sunset.errors import (
    DeadlineExceeded,
    DeliveryInDoubt,
    InputError,
    TransientError,
    VerificationFailed,
    is_transient,
)

pytestmark = pytest.mark.unit

REQUEST = httpx2.Request("POST", "https://api.anthropic.example/v1/messages")


def s3_error(code: str, status: int) -> ClientError:
    response = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, "PutObject")


def api_status(status: int) -> anthropic.APIStatusError:
    return anthropic.APIStatusError(
        "status", response=httpx2.Response(status, request=REQUEST), body=None
    )


TRANSIENT = [
    TransientError("the stand-in asked to retry"),
    s3_error("SlowDown", 503),
    s3_error("RequestTimeout", 400),  # a 4xx that S3 means as "try again"
    s3_error("SomethingNew", 502),  # any 5xx, named or not
    EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
    ReadTimeoutError(endpoint_url="http://127.0.0.1:1"),
    ResponseStreamingError(error="connection reset while a body was read"),
    IncompleteReadError(actual_bytes=10, expected_bytes=20),
    anthropic.APIConnectionError(request=REQUEST),
    anthropic.APITimeoutError(request=REQUEST),
    *(api_status(status) for status in (408, 409, 429, 500, 529)),
    smtplib.SMTPResponseException(451, b"4.3.0 try again later"),
    smtplib.SMTPServerDisconnected("connection unexpectedly closed"),
    ConnectionResetError("connection reset by peer"),
    TimeoutError("timed out"),
]
PERMANENT = [
    InputError("the weights directory is empty"),
    VerificationFailed("a stored object differs from the manifest"),
    DeadlineExceeded("the interview ran out of time"),  # would run past it again
    DeliveryInDoubt("the link broke after DATA"),  # a retry could send the notice twice
    s3_error("AccessDenied", 403),
    s3_error("NoSuchKey", 404),
    *(api_status(status) for status in (400, 401, 403, 404, 413)),
    smtplib.SMTPResponseException(550, b"5.1.1 no such user"),
    ValueError("a bug is not a passing failure"),
    FileNotFoundError("weights/config.json"),
]


@pytest.mark.parametrize("exc", TRANSIENT, ids=repr)
def test_a_failure_that_may_pass_is_retried(exc: BaseException) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize("exc", PERMANENT, ids=repr)
def test_a_failure_that_would_only_repeat_is_not_retried(exc: BaseException) -> None:
    assert not is_transient(exc)
