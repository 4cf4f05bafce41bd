"""Preflight proves every service before the first side effect (sunset/readiness.py).

On the real local services: a missing key, a wrong key, a model id the Messages API does
not serve and a refused SMTP login each stop the run in preflight, naming the setting to
fix, before any notice, ledger run, stored byte or serving change; one dropped connection
is tried again and the run goes on. The retry rule itself is the fast tier's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlmodel import select

from flows import deprecate as deprecate_flow
from sunset.config import Settings
from sunset.errors import InputError, TransientError
from sunset.interview.client import AnthropicMessages
from sunset.ledger import CatalogModel, DeprecationRun, StepAttempt
from sunset.readiness import with_retries
from sunset.runs.request import DeprecationRequest
from sunset.runs.steps import NOTIFY_STEP, PREFLIGHT_STEP, RETRIES
from sunset_dev.devstack import start_smtp
from sunset_dev.example_model import EXAMPLE_MODEL_ID
from tests.conftest import Site
from tests.faults.flaky import ANSWER, Flaky
from tests.faults.tcp_relay import TcpRelay
from tests.standin_control import StandIn


def run_flow(site: Site) -> Any:
    request = DeprecationRequest(
        model_id=EXAMPLE_MODEL_ID, weights=str(site.weights), recipients=str(site.recipients)
    )
    return deprecate_flow.deprecate_model(request)


def assert_nothing_happened(site: Site) -> None:
    """No notice, no ledger run, no stored object, no serving change."""
    assert site.mailbox() == []
    with site.ledger.session() as db:
        assert db.exec(select(DeprecationRun)).first() is None
        assert db.exec(select(StepAttempt)).first() is None
        model = db.get(CatalogModel, EXAMPLE_MODEL_ID)
        assert model is not None and model.serving_status == "active"
    assert site.object_keys() == []
    assert not Settings().routing_file.exists()


def refusal(site: Site) -> str:
    with pytest.raises(InputError) as refused:
        run_flow(site)
    message = str(refused.value)
    assert "\n" not in message and message.endswith("."), message
    assert_nothing_happened(site)
    return message


@pytest.mark.usefixtures("prefect_server")
def test_a_missing_api_key_stops_the_run_before_anyone_is_told(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SUNSET_ANTHROPIC_API_KEY")
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)

    message = refusal(site)

    assert "No API key is set" in message
    assert "SUNSET_ANTHROPIC_API_KEY" in message


@pytest.mark.usefixtures("prefect_server")
def test_a_wrong_api_key_stops_the_run_before_anyone_is_told(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUNSET_ANTHROPIC_API_KEY", "sk-not-the-key-it-takes")

    message = refusal(site)

    assert "refused the API key (401 invalid x-api-key)" in message
    assert "SUNSET_ANTHROPIC_API_KEY" in message
    assert "sk-not-the-key-it-takes" not in message


@pytest.mark.usefixtures("prefect_server")
def test_a_model_id_the_api_does_not_serve_stops_the_run_before_anyone_is_told(
    site: Site, standin: StandIn
) -> None:
    standin.serve_only("acme-chat-2")

    message = refusal(site)

    assert f"does not serve the model being deprecated '{EXAMPLE_MODEL_ID}'" in message
    assert "404" in message and "SUNSET_MESSAGES_BASE_URL" in message


@pytest.mark.usefixtures("prefect_server")
def test_an_unknown_preference_finder_model_is_named_by_its_setting(
    site: Site, standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    standin.serve_only(EXAMPLE_MODEL_ID)
    monkeypatch.setenv("SUNSET_PREFERENCE_FINDER_MODEL", "no-such-finder")

    message = refusal(site)

    assert "does not serve the preference finder 'no-such-finder'" in message
    assert "SUNSET_PREFERENCE_FINDER_MODEL" in message


@pytest.mark.usefixtures("prefect_server")
def test_a_refused_smtp_login_stops_the_run_before_anyone_is_told(
    site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The relay demands a login and refuses this password: retrying cannot help.
    guarded = start_smtp(tmp_path / "guarded-mailbox", require_auth=("sunset", "right"))
    try:
        monkeypatch.setenv("SUNSET_SMTP_PORT", str(guarded.port))
        monkeypatch.setenv("SUNSET_SMTP_USERNAME", "sunset")
        monkeypatch.setenv("SUNSET_SMTP_PASSWORD", "wrong")
        message = refusal(site)
    finally:
        guarded.stop()

    assert "refused the login of 'sunset' (535)" in message
    assert "SUNSET_SMTP_USERNAME and SUNSET_SMTP_PASSWORD" in message
    assert "wrong" not in message
    assert list((tmp_path / "guarded-mailbox").glob("*/*")) == []


@pytest.mark.usefixtures("prefect_server")
def test_a_dropped_connection_in_preflight_is_tried_again_and_the_run_goes_on(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoints = site.stack.endpoints
    with TcpRelay(endpoints.smtp_host, endpoints.smtp_port) as relay:
        relay.drop_next = 1  # the first connection, preflight's login, is reset at once
        monkeypatch.setenv("SUNSET_SMTP_PORT", str(relay.port))
        outcome = run_flow(site)
        assert relay.dropped == 1

    assert outcome.status == "deprecated"
    with site.ledger.session() as db:
        recorded = [(a.step, a.attempt, a.state) for a in db.exec(select(StepAttempt))]
    # Preflight tried the relay again inside its one attempt; the notices all went out.
    assert recorded[:2] == [(PREFLIGHT_STEP, 1, "completed"), (NOTIFY_STEP, 1, "completed")]
    assert len(site.mailbox()) == 3


# ---------------------------------------------------------------------- the fast tier


@pytest.mark.unit
def test_a_failure_that_may_pass_is_tried_again_after_doubling_waits() -> None:
    probe = Flaky(
        ConnectionRefusedError(111, "Connection refused"), TransientError("The relay answered 503.")
    )
    waits: list[float] = []
    told: list[str] = []

    answer = with_retries(
        probe, what="mail relay", on_retry=told.append, sleep=waits.append, jitter=lambda: 0.5
    )

    assert answer == ANSWER and probe.calls == 3
    assert waits == [1.0, 2.0]
    assert told == [
        "mail relay: [Errno 111] Connection refused; trying again in 1.0 s (1 of 3).",
        "mail relay: The relay answered 503; trying again in 2.0 s (2 of 3).",
    ]


@pytest.mark.unit
def test_a_permanent_refusal_is_not_tried_again() -> None:
    probe = Flaky(InputError("The SMTP relay refused the login."))
    waits: list[float] = []

    with pytest.raises(InputError, match="refused the login"):
        with_retries(probe, what="mail relay", on_retry=print, sleep=waits.append)

    assert probe.calls == 1 and waits == []


@pytest.mark.unit
def test_retries_end_like_a_steps_with_the_last_failure() -> None:
    probe = Flaky(*[TransientError(f"no answer {n}") for n in range(RETRIES + 1)])
    waits: list[float] = []

    with pytest.raises(TransientError, match=f"no answer {RETRIES}"):
        with_retries(
            probe, what="Messages API", on_retry=print, sleep=waits.append, jitter=lambda: 0.0
        )

    assert probe.calls == RETRIES + 1
    assert waits == [0.5 * 2**n for n in range(RETRIES)]  # jittered down by half


@pytest.mark.unit
def test_no_api_key_is_refused_without_asking_the_api() -> None:
    # Nothing listens at this address: the sentence comes before any request.
    client = AnthropicMessages(base_url="http://127.0.0.1:9", api_key=SecretStr(""))

    with pytest.raises(InputError, match="set SUNSET_ANTHROPIC_API_KEY"):
        client.check_model("acme-chat-1", role="the model being deprecated", fix="serve it")
