"""The exceptions Sunset raises, and which failures are worth retrying.

    SunsetError                 every failure Sunset itself names
    ├── InputError              the request is wrong: fix the input and run again
    │   └── NothingToDo         the model already is where the request would take it
    ├── GuardRefused            a serving-status change is not allowed (yet)
    ├── GatewayError            the serving gateway refused a change, or does not show it
    ├── RunConflict             another run for the same model is in progress
    ├── PreservationError       the preserved copy cannot be trusted
    │   ├── VerificationFailed  a stored object differs from the manifest
    │   ├── SourceChanged       bytes read to store differ from what they must be
    │   └── ResurrectionFailed  the restored model does not reproduce its fingerprint
    ├── DeadlineExceeded        a bounded piece of work ran out of time; rerun to resume
    ├── DeliveryRejected        a receiver refused one notice for good (others go on)
    ├── DeliveryInDoubt         the link broke during a hand-over: it may have arrived
    └── TransientError          a service failed in a way that may pass; retry

Every message is a sentence a release manager can act on. ``is_transient`` decides for
the step decorator whether another attempt can succeed.
"""

from __future__ import annotations

import socket
import sys
from typing import Any


class SunsetError(Exception):
    """Base class of every error Sunset raises on purpose."""


class InputError(SunsetError):
    """The request or one of its files is invalid; nothing was changed."""


class NothingToDo(InputError):
    """The model already has the serving status the run would give it; nothing was changed.

    A duplicate start is harmless: its flow run ends in a completed state named so.
    """


class GuardRefused(SunsetError):
    """A serving-status transition was refused because a precondition does not hold."""


class GatewayError(SunsetError):
    """The serving gateway refused a route change, or after a flip does not show it."""


class RunConflict(SunsetError):
    """Another deprecation run for the same model is still in progress."""


class PreservationError(SunsetError):
    """The preserved package is incomplete or cannot be trusted."""


class VerificationFailed(PreservationError):
    """A stored object does not match the manifest."""


class DeadlineExceeded(SunsetError):
    """Work ran past its wall-clock deadline; what was done is kept, a rerun resumes it.

    Not transient: retrying at once would only run past the same deadline again.
    """


class SourceChanged(PreservationError):
    """The bytes read for an object differ from the digests they must have; nothing was stored."""


class DeliveryRejected(SunsetError):
    """A receiver refused one notice for good (a 5xx SMTP reply to the recipient, a 4xx
    webhook answer); the other recipients are still told."""


class DeliveryInDoubt(SunsetError):
    """The connection broke after the notice was handed over: it may have arrived, so it
    is not sent again."""


class ResurrectionFailed(PreservationError):
    """The model loaded from a restored package does not reproduce its fingerprint."""


class TransientError(SunsetError):
    """A failure that may pass on its own: another attempt can succeed."""


_TRANSIENT_S3_CODES = {
    "InternalError",
    "ServiceUnavailable",
    "SlowDown",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "Throttling",
    "ThrottlingException",
}


def is_transient(exc: BaseException) -> bool:
    """Tell whether another attempt at the same work could succeed.

    A reset connection, a 5xx, a 429/529 or a temporary SMTP reply is transient; a
    checksum mismatch, a 403 or a bad input is not, however often it is retried.
    """
    if isinstance(exc, TransientError):
        return True
    if isinstance(exc, SunsetError):
        return False
    # An error of botocore, anthropic or smtplib can only come from a loaded module:
    # looking them up there, not importing them here, keeps them out of commands that
    # never use them.
    botocore = sys.modules.get("botocore.exceptions")
    if botocore is not None and _transient_in_s3(exc, botocore):
        return True
    anthropic = sys.modules.get("anthropic")
    if anthropic is not None and _transient_in_messages_api(exc, anthropic):
        return True
    smtplib = sys.modules.get("smtplib")
    if smtplib is not None and isinstance(exc, smtplib.SMTPResponseException):
        return 400 <= exc.smtp_code < 500
    if smtplib is not None and isinstance(
        exc, smtplib.SMTPServerDisconnected | smtplib.SMTPConnectError
    ):
        return True
    return isinstance(exc, ConnectionError | TimeoutError | socket.timeout)


def _transient_in_s3(exc: BaseException, botocore: Any) -> bool:
    if isinstance(exc, botocore.ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return error.get("Code") in _TRANSIENT_S3_CODES or status >= 500
    return isinstance(
        exc,
        botocore.EndpointConnectionError
        | botocore.ConnectionClosedError
        | botocore.ReadTimeoutError
        | botocore.ConnectTimeoutError
        # The connection broke while a body was being read.
        | botocore.ResponseStreamingError
        | botocore.IncompleteReadError,
    )


def _transient_in_messages_api(exc: BaseException, anthropic: Any) -> bool:
    if isinstance(exc, anthropic.APIConnectionError | anthropic.APITimeoutError):
        return True
    if isinstance(exc, anthropic.APIStatusError):
        return bool(exc.status_code in (408, 409, 429) or exc.status_code >= 500)
    return False
