"""The email channel: composing a notice and handing it to an SMTP relay."""

from __future__ import annotations

import smtplib
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

from pydantic import SecretStr

from sunset.errors import DeliveryInDoubt, DeliveryRejected, InputError, TransientError
from sunset.notify.message import Notice, NoticeTemplates
from sunset.notify.recipients import Recipient


@dataclass(frozen=True)
class SmtpRelay:
    """Where and how to hand over mail."""

    host: str
    port: int
    starttls: bool = False
    username: str | None = None
    password: SecretStr | None = None
    timeout_s: float = 30.0


class _HandoverSMTP(smtplib.SMTP):
    """Tells, just before DATA, that the relay may from now on hold the message."""

    def __init__(self, *args: Any, handover: Callable[[], None], **kwargs: Any) -> None:
        self._handover = handover
        self.handed_over = False
        super().__init__(*args, **kwargs)

    def data(self, msg: Any) -> tuple[int, bytes]:
        self._handover()
        self.handed_over = True
        return super().data(msg)


class SmtpMailer:
    """Sends one message per connection, so a dropped link costs one message at most."""

    def __init__(self, relay: SmtpRelay) -> None:
        self.relay = relay

    def send(self, message: EmailMessage, handover: Callable[[], None] = lambda: None) -> None:
        """Hand ``message`` to the relay; ``handover`` runs right before its DATA command.

        Raises:
            DeliveryRejected: the relay refused the recipient for good.
            DeliveryInDoubt: the link broke after DATA began, before the relay's answer.
        """
        relay = self.relay
        smtp = _HandoverSMTP(relay.host, relay.port, timeout=relay.timeout_s, handover=handover)
        try:
            if relay.starttls:
                # Check the relay's certificate: the password is sent right after.
                smtp.starttls(context=ssl.create_default_context())
            if relay.username:
                password = relay.password.get_secret_value() if relay.password else ""
                smtp.login(relay.username, password)
            smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            refusals = "; ".join(f"{code} {reply!r}" for code, reply in exc.recipients.values())
            raise DeliveryRejected(f"the relay refused the recipient: {refusals}") from None
        except smtplib.SMTPResponseException:
            raise  # the relay answered: the message was not accepted, whatever the phase
        except OSError as exc:  # includes SMTPServerDisconnected
            if smtp.handed_over:
                raise DeliveryInDoubt(
                    f"the link to the relay broke during DATA ({type(exc).__name__}: {exc})"
                ) from exc
            raise
        finally:
            _close(smtp)

    def check(self) -> None:
        """Connect, upgrade with STARTTLS and log in as a notice would, and send nothing.

        Raises:
            InputError: the host is unknown, STARTTLS or the login is refused or not
                offered; the sentence names the SUNSET_SMTP_* setting to fix.
            TransientError: no connection, a dropped link or a 4xx reply; it may pass.
        """
        relay = self.relay
        where = f"The SMTP relay at {relay.host}:{relay.port}"
        try:
            smtp = smtplib.SMTP(relay.host, relay.port, timeout=relay.timeout_s)
        except socket.gaierror:
            raise InputError(
                f"The SMTP relay host {relay.host!r} is not known; check SUNSET_SMTP_HOST."
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise TransientError(
                f"{where} could not be reached ({type(exc).__name__}: {exc}); check "
                "SUNSET_SMTP_HOST and SUNSET_SMTP_PORT, and that the relay is up."
            ) from None
        step = "connect"
        try:
            smtp.ehlo()
            if relay.starttls:
                step = "starttls"
                smtp.starttls(context=ssl.create_default_context())
            if relay.username:
                step = "login"
                password = relay.password.get_secret_value() if relay.password else ""
                smtp.login(relay.username, password)
        except smtplib.SMTPAuthenticationError as exc:
            raise InputError(
                f"{where} refused the login of {relay.username!r} ({exc.smtp_code}); check "
                "SUNSET_SMTP_USERNAME and SUNSET_SMTP_PASSWORD."
            ) from None
        except (smtplib.SMTPNotSupportedError, ssl.SSLError) as exc:
            setting = "SUNSET_SMTP_STARTTLS" if step == "starttls" else "SUNSET_SMTP_USERNAME"
            raise InputError(f"{where} failed at {step} ({exc}); check {setting}.") from None
        except smtplib.SMTPResponseException as exc:
            said = f"{where} answered {exc.smtp_code} at {step}"
            if 400 <= exc.smtp_code < 500:
                raise TransientError(f"{said}, which may pass; run again later.") from None
            raise InputError(f"{said}; check the SUNSET_SMTP_* settings.") from None
        except OSError as exc:  # includes SMTPServerDisconnected
            raise TransientError(
                f"{where} broke the link at {step} ({type(exc).__name__}); check that the "
                "relay is up."
            ) from None
        finally:
            _close(smtp)


def _close(smtp: smtplib.SMTP) -> None:
    # Once the relay accepted the message, a failing QUIT changes nothing about it.
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        pass
    finally:
        smtp.close()


def compose_notice(
    templates: NoticeTemplates,
    notice: Notice,
    recipient: Recipient,
    *,
    mail_from: str,
    message_id: str,
) -> EmailMessage:
    """A notice with a plain-text part and an HTML alternative, from its kind's templates."""
    message = EmailMessage()
    message["From"] = mail_from
    local, _, domain = recipient.email.partition("@")
    message["To"] = Address(display_name=recipient.name, username=local, domain=domain)
    message["Subject"] = notice.subject
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = message_id
    message.set_content(templates.text(notice, recipient))
    message.add_alternative(templates.html(notice, recipient), subtype="html")
    return message
