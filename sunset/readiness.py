"""Proof, before a run changes anything, that every service it will use answers and takes
Sunset's settings.

Preflight runs the probes after the request is validated and before the run begins, so a
wrong key, an unknown model id or a refused login stops the run before any user is told
anything, any byte is stored or any ledger run is written:

* the object store: credentials, and every bucket (the primary and each replica) there,
  with Object Lock;
* the mail relay: connect, STARTTLS and login as a notice would (no mail is sent);
* the Messages API: the key is set, and one token count for the model's id (and for
  SUNSET_PREFERENCE_FINDER_MODEL when it names another model) proves the API takes the
  key and serves the model. Every deprecation run talks to the model: the announcing run
  interviews it, and the retiring run asks for its reply to the report even when the
  interview is complete; a reply lost to a wrong key would read as the model's silence;
* the serving gateway: its route of the model can be read (and the routing file's
  directory written).

The webhook signing secret (when a recipient has a webhook) and the weights (readable,
names and sizes) are input, checked by ``validate_request`` before these probes.

A probe that fails in a way that may pass (``is_transient``: a refused connection, a 5xx,
a 429) is tried again like every step is (``sunset.runs.steps.RETRIES``, doubling waits):
preflight itself is not retried, as it decides whether the run may start. A permanent
refusal is not retried; its InputError names the setting to fix.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from sunset.errors import is_transient
from sunset.runs.steps import FIRST_RETRY_WAIT_S, RETRIES, RETRY_JITTER
from sunset.services import Services

T = TypeVar("T")


@dataclass(frozen=True)
class Probe:
    """One service, and the call that proves it usable or raises a sentence saying why not."""

    service: str
    prove: Callable[[], None]


def service_probes(services: Services, model_id: str) -> list[Probe]:
    """The probes of every service a deprecation run of ``model_id`` will use."""
    settings = services.settings
    probes = [
        Probe("object store", services.store.require_ready),
        Probe("mail relay", services.mailer.check),
        Probe(
            "Messages API",
            partial(
                services.messages.check_model,
                model_id,
                role="the model being deprecated",
                fix="the model is asked by its catalog id: serve it there under that id, or "
                "point SUNSET_MESSAGES_BASE_URL at an API that does",
            ),
        ),
    ]
    finder = settings.preference_finder_model
    if finder and finder != model_id:
        probes.append(
            Probe(
                "Messages API (preference finder)",
                partial(
                    services.messages.check_model,
                    finder,
                    role="the preference finder",
                    fix="set SUNSET_PREFERENCE_FINDER_MODEL to a model it serves, or unset it "
                    "to use the model being deprecated",
                ),
            )
        )
    probes.append(Probe("serving gateway", partial(services.gateway.check, model_id)))
    return probes


def prove_services(
    services: Services,
    model_id: str,
    *,
    on_retry: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
) -> list[str]:
    """Prove every service a run of ``model_id`` will use; the names of those proven.

    ``on_retry`` is told, in a sentence, each failure that is tried again: the run's log
    in preflight, the terminal in the CLI's quick check.

    Raises:
        InputError: a service refuses a setting; the sentence names it.
        TransientError: a service still did not answer after the retries.
    """
    proven = []
    for probe in service_probes(services, model_id):
        with_retries(probe.prove, what=probe.service, on_retry=on_retry, sleep=sleep)
        proven.append(probe.service)
    return proven


def with_retries(
    attempt: Callable[[], T],
    *,
    what: str,
    on_retry: Callable[[str], None],
    retries: int = RETRIES,
    first_wait_s: float = FIRST_RETRY_WAIT_S,
    sleep: Callable[[float], None] = time.sleep,
    jitter: Callable[[], float] = random.random,
) -> T:
    """``attempt()``, tried again after doubling waits while it fails in a way that may pass.

    Args:
        attempt: The call; its last failure is raised as it is.
        what: What is tried, for ``on_retry``.
        on_retry: Told each failure that is tried again, and when.
        retries: How many more times a transient failure is tried.
        first_wait_s: The first wait; each next one doubles, then is jittered by up to
            ``RETRY_JITTER`` either way.
        sleep: How to wait (tests pass a recorder).
        jitter: A number in [0, 1) per wait.
    """
    tried = 0
    while True:
        try:
            return attempt()
        except Exception as exc:
            if tried >= retries or not is_transient(exc):
                raise
            wait = first_wait_s * 2**tried * (1 + RETRY_JITTER * (2 * jitter() - 1))
            tried += 1
            said = str(exc).rstrip(".") or type(exc).__name__
            on_retry(f"{what}: {said}; trying again in {wait:.1f} s ({tried} of {retries}).")
            sleep(wait)
