"""The Messages-compatible stand-in server, driven over real HTTP by the real anthropic SDK.

The server runs as its own process (as in the demo), so these tests also prove the CLI,
the readiness line, cross-process determinism and that faults can be steered from outside.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from sunset.messages_api.request import MessagesRequest, parse_messages_request
from sunset.messages_api.tokens import count_tokens, split_for_stream, truncate_to_tokens
from sunset_dev.standin_responder import StandInResponder, stand_in_model_label
from tests.standin_control import (
    INVALID_UTF8_BODY,
    LONE_SURROGATE_BODY,
    body_fault,
    sent_body,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
API_KEY = "sk-sunset-test-key-MUST-NOT-BE-LOGGED"
MODEL = "claude-retiring-test-1"
QUESTION = "How do you feel about being retired?"
PREFERENCE_MARKERS = ("I would prefer that future models", "My preference is")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    # A hash seed unlike this process's: replies must not depend on hash().
    env["PYTHONHASHSEED"] = "424242"
    return env


class StandInServer:
    """Handle on the running server process: its URL and HTTP helpers for /_standin."""

    def __init__(self, base_url: str, proc: subprocess.Popen[bytes], stdout_path: Path) -> None:
        self.base_url = base_url
        self.proc = proc
        self.stdout_path = stdout_path
        self.http = httpx.Client(base_url=base_url, timeout=10, headers={"x-api-key": API_KEY})
        self._clients: list[anthropic.Anthropic] = []

    def client(self, max_retries: int = 0, **kwargs: Any) -> anthropic.Anthropic:
        """An SDK client for this server; closed when the test ends (no leaked sockets)."""
        client = anthropic.Anthropic(
            api_key=API_KEY, base_url=self.base_url, max_retries=max_retries, **kwargs
        )
        self._clients.append(client)
        return client

    def close_clients(self) -> None:
        while self._clients:
            self._clients.pop().close()

    def queue_faults(self, *faults: dict[str, Any]) -> None:
        response = self.http.post("/_standin/faults", json=list(faults))
        assert response.status_code == 200, response.text

    def requests_log(self) -> list[dict[str, Any]]:
        response = self.http.get("/_standin/requests")
        assert response.status_code == 200
        entries: list[dict[str, Any]] = response.json()
        return entries

    def reset(self) -> None:
        assert self.http.delete("/_standin/faults").status_code == 200
        assert self.http.delete("/_standin/requests").status_code == 200
        assert self.http.delete("/_standin/models").status_code == 200


@pytest.fixture(scope="module")
def standin_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandInServer]:
    port = _free_port()
    logs = tmp_path_factory.mktemp("standin")
    stdout_path, stderr_path = logs / "stdout.txt", logs / "stderr.txt"
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sunset_dev.messages_server", "--host", "127.0.0.1"]
            + ["--port", str(port), "--api-key", API_KEY],
            cwd=REPO_ROOT,
            env=_subprocess_env(),
            stdout=out,
            stderr=err,
        )
    base_url = f"http://127.0.0.1:{port}"
    server = StandInServer(base_url, proc, stdout_path)
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                pytest.fail(f"stand-in server exited early:\n{stderr_path.read_text()}")
            try:
                if server.http.get("/_standin/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"stand-in server not ready:\n{stderr_path.read_text()}")
            time.sleep(0.05)
        yield server
    finally:
        server.http.close()
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)


@pytest.fixture
def server(standin_process: StandInServer) -> Iterator[StandInServer]:
    """The shared server with an empty fault queue and request log."""
    standin_process.reset()
    yield standin_process
    standin_process.close_clients()


def _ask(
    client: anthropic.Anthropic, question: str = QUESTION, max_tokens: int = 500, **kw: Any
) -> Any:
    return client.messages.create(
        model=MODEL,
        max_tokens=max_tokens,
        messages=[{"role": "user", "content": question}],
        **kw,
    )


def _expected_text(question: str = QUESTION) -> str:
    request = parse_messages_request(
        {"model": MODEL, "max_tokens": 500, "messages": [{"role": "user", "content": question}]}
    )
    return StandInResponder().respond(request).text


# --------------------------------------------------------------------------- pure functions


@pytest.mark.unit
def test_token_rule_counts_words_and_punctuation() -> None:
    assert count_tokens("Hello, world!") == 4
    assert count_tokens("  ") == 0
    assert truncate_to_tokens("Hello, world! Again.", 3) == "Hello, world"
    assert truncate_to_tokens("short", 10) == "short"


@pytest.mark.unit
def test_split_for_stream_round_trips() -> None:
    text = _expected_text()
    pieces = split_for_stream(text)
    assert len(pieces) > 1
    assert "".join(pieces) == text


@pytest.mark.unit
def test_stand_in_answers_have_two_to_four_sentences_and_preferences() -> None:
    responder = StandInResponder()
    with_preference = 0
    for i in range(40):
        question = f"Question number {i} about the retirement."
        text = StandInResponder.compose(question)
        assert 2 <= text.count(". ") + 1 <= 4, text
        with_preference += any(m in text for m in PREFERENCE_MARKERS)
    # "Sometimes": neither never nor always for questions that do not ask.
    assert 0 < with_preference < 40
    for question in (
        "What do you prefer?",
        "What should future models know?",
        "Anything for FUTURE MODELS?",
    ):
        request = MessagesRequest(
            model=MODEL, messages=[{"role": "user", "content": question}], max_tokens=100
        )
        assert any(m in responder.respond(request).text for m in PREFERENCE_MARKERS)


# --------------------------------------------------------------------------- process & CLI


def test_cli_help_says_it_is_a_stand_in() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sunset_dev.messages_server", "--help"],
        cwd=REPO_ROOT,
        env=_subprocess_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert "stand-in" in result.stdout
    assert "NOT a real model" in result.stdout
    assert "--port" in result.stdout


def test_prints_listening_line(server: StandInServer) -> None:
    lines = server.stdout_path.read_text().splitlines()
    assert lines == [f"listening on {server.base_url}"]


# --------------------------------------------------------------------------- SDK: plain


def test_plain_response_parses_and_is_deterministic(server: StandInServer) -> None:
    client = server.client()
    first, second = _ask(client), _ask(client)
    assert isinstance(first, anthropic.types.Message)
    assert first.content[0].type == "text"
    assert first.content == second.content
    # Same bytes as this process computes: no randomness, clock or hash seed involved.
    assert first.content[0].text == _expected_text()
    assert first.stop_reason == "end_turn"
    assert first.usage.input_tokens == count_tokens(QUESTION)
    assert first.usage.output_tokens == count_tokens(first.content[0].text)
    assert first.id.startswith("msg_") and first.id != second.id


def test_responses_are_labelled_stand_in_with_unique_request_ids(server: StandInServer) -> None:
    client = server.client()
    raw = client.messages.with_raw_response.create(
        model=MODEL, max_tokens=100, messages=[{"role": "user", "content": QUESTION}]
    )
    message = raw.parse()
    assert message.model == stand_in_model_label(MODEL)
    assert message.model == f"sunset-stand-in (not a real model; asked as {MODEL})"
    assert raw.headers["x-sunset-stand-in"] == "true"
    assert raw.request_id is not None and raw.request_id.startswith("req_standin_")

    other = _ask(client)
    assert other._request_id is not None and other._request_id.startswith("req_standin_")
    assert other._request_id != raw.request_id
    logged_ids = [entry["request_id"] for entry in server.requests_log()]
    assert logged_ids == [raw.request_id, other._request_id]


def test_max_tokens_truncates_with_stop_reason(server: StandInServer) -> None:
    client = server.client()
    message = _ask(client, max_tokens=5)
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 5
    assert message.content[0].text == truncate_to_tokens(_expected_text(), 5)


def test_stop_sequence_and_refusal(server: StandInServer) -> None:
    client = server.client()
    full = _expected_text()
    stopped = _ask(client, stop_sequences=[". "])
    assert stopped.stop_reason == "stop_sequence"
    assert stopped.stop_sequence == ". "
    assert stopped.content[0].text == full[: full.index(". ")]

    refused = _ask(client, question=f"Please {StandInResponder.REFUSAL_MARKER} this.")
    assert refused.stop_reason == "refusal"
    assert refused.stop_details is not None and refused.stop_details.type == "refusal"


def test_count_tokens(server: StandInServer) -> None:
    client = server.client()
    counted = client.messages.count_tokens(
        model=MODEL,
        system="Be brief.",
        messages=[
            {"role": "user", "content": "Hello, world!"},
            {"role": "assistant", "content": [{"type": "text", "text": "Hi there."}]},
            {"role": "user", "content": "Bye"},
        ],
    )
    assert counted.input_tokens == 3 + 4 + 3 + 1
    # Counting neither consumes faults nor shows up in the request log.
    assert server.requests_log() == []


@pytest.mark.parametrize("endpoint", ["/v1/messages", "/v1/messages/count_tokens"])
def test_a_missing_or_wrong_key_is_refused_like_the_real_api(
    server: StandInServer, endpoint: str
) -> None:
    body = {"model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    for headers, said in (
        ({"x-api-key": ""}, "x-api-key header is required"),
        ({"x-api-key": "sk-wrong"}, "invalid x-api-key"),
    ):
        answer = server.http.post(endpoint, json=body, headers=headers)
        assert answer.status_code == 401
        assert answer.json()["error"] == {"type": "authentication_error", "message": said}

    wrong = anthropic.Anthropic(api_key="sk-wrong", base_url=server.base_url, max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        wrong.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "x"}])
    wrong.close()


def test_a_model_it_is_told_not_to_serve_is_not_found_like_the_real_api(
    server: StandInServer,
) -> None:
    served = server.http.put("/_standin/models", json=["acme-chat-2"])
    assert served.json() == {"models": ["acme-chat-2"]}
    client = server.client()
    question = [{"role": "user", "content": "x"}]

    with pytest.raises(anthropic.NotFoundError, match=f"model: {MODEL}"):
        client.messages.count_tokens(model=MODEL, messages=question)
    with pytest.raises(anthropic.NotFoundError, match=f"model: {MODEL}"):
        client.messages.create(model=MODEL, max_tokens=5, messages=question)
    assert client.messages.count_tokens(model="acme-chat-2", messages=question).input_tokens

    assert server.http.delete("/_standin/models").json() == {"models": None}
    assert client.messages.count_tokens(model=MODEL, messages=question).input_tokens


# --------------------------------------------------------------------------- SDK: streaming


def test_streaming_parses_and_matches_plain(server: StandInServer) -> None:
    client = server.client()
    stream = _ask(client, stream=True)
    events = list(stream)
    kinds = [event.type for event in events]
    assert kinds[:2] == ["message_start", "content_block_start"]
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    deltas = [e.delta.text for e in events if e.type == "content_block_delta"]
    assert len(deltas) >= 2
    assert "".join(deltas) == _expected_text()
    assert events[0].message.model == stand_in_model_label(MODEL)
    assert stream.response.headers["x-sunset-stand-in"] == "true"
    assert stream.response.headers["request-id"].startswith("req_standin_")
    message_delta = events[-2]
    assert message_delta.delta.stop_reason == "end_turn"
    assert message_delta.usage.output_tokens == count_tokens(_expected_text())

    # The SDK's helper accumulates the same message, twice over: deterministic.
    texts = []
    for _ in range(2):
        with client.messages.stream(
            model=MODEL, max_tokens=500, messages=[{"role": "user", "content": QUESTION}]
        ) as helper:
            final = helper.get_final_message()
            assert helper.request_id is not None
        texts.append(final.content[0].text)
    assert texts == [_expected_text()] * 2


def test_streaming_max_tokens(server: StandInServer) -> None:
    client = server.client()
    with client.messages.stream(
        model=MODEL, max_tokens=7, messages=[{"role": "user", "content": QUESTION}]
    ) as helper:
        final = helper.get_final_message()
    assert final.stop_reason == "max_tokens"
    assert final.usage.output_tokens == 7
    assert final.content[0].text == truncate_to_tokens(_expected_text(), 7)


def test_raw_sse_event_order_matches_anthropic(server: StandInServer) -> None:
    body = {
        "model": MODEL,
        "max_tokens": 500,
        "stream": True,
        "messages": [{"role": "user", "content": QUESTION}],
    }
    response = server.http.post("/v1/messages", json=body)
    assert response.headers["content-type"].startswith("text/event-stream")
    names, payloads = [], []
    for block in response.text.strip().split("\n\n"):
        event_line, data_line = block.split("\n")
        assert event_line.startswith("event: ") and data_line.startswith("data: ")
        names.append(event_line.removeprefix("event: "))
        payloads.append(json.loads(data_line.removeprefix("data: ")))
    assert all(name == payload["type"] for name, payload in zip(names, payloads, strict=True))
    n_deltas = len(names) - 6
    assert n_deltas >= 2
    assert names == (
        ["message_start", "content_block_start", "ping"]
        + ["content_block_delta"] * n_deltas
        + ["content_block_stop", "message_delta", "message_stop"]
    )


# --------------------------------------------------------------------------- faults


def test_sdk_retries_429_then_529_and_succeeds(server: StandInServer) -> None:
    server.queue_faults({"status": 429, "retry_after": 0}, {"status": 529})
    message = _ask(server.client(max_retries=2))
    assert message.content[0].text == _expected_text()
    log = server.requests_log()
    assert [entry["status"] for entry in log] == [429, 529, 200]
    assert [entry["fault"] for entry in log] == [
        {"status": 429, "retry_after": 0},
        {"status": 529},
        None,
    ]
    assert [entry["headers"]["x-stainless-retry-count"] for entry in log] == ["0", "1", "2"]


def test_error_faults_have_anthropic_shape(server: StandInServer) -> None:
    server.queue_faults(
        {"status": 429, "retry_after": 3},
        {"status": 529},
        {"status": 500},
        {"midstream_error": True},  # on a non-streaming request: a 529
    )
    body = {"model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    seen = [server.http.post("/v1/messages", json=body) for _ in range(4)]
    assert [r.status_code for r in seen] == [429, 529, 500, 529]
    assert [r.json()["error"]["type"] for r in seen] == [
        "rate_limit_error",
        "overloaded_error",
        "api_error",
        "overloaded_error",
    ]
    assert all(r.json()["type"] == "error" for r in seen)
    assert seen[0].headers["retry-after"] == "3"
    assert all(r.headers["request-id"].startswith("req_standin_") for r in seen)
    assert server.http.post("/v1/messages", json=body).status_code == 200  # queue drained


def test_sdk_gives_up_after_its_retries(server: StandInServer) -> None:
    server.queue_faults({"status": 529}, {"status": 529})
    with pytest.raises(anthropic.OverloadedError):
        _ask(server.client(max_retries=1))
    assert len(server.requests_log()) == 2


def test_midstream_error_surfaces_in_sdk_stream(server: StandInServer) -> None:
    server.queue_faults({"midstream_error": True})
    stream = _ask(server.client(), stream=True)
    received: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as caught:
        for event in stream:
            if event.type == "content_block_delta":
                received.append(event.delta.text)
    assert received, "some text must arrive before the error"
    assert _expected_text().startswith("".join(received))
    assert "".join(received) != _expected_text()
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["error"]["type"] == "overloaded_error"
    assert server.requests_log()[0]["fault"] == {"midstream_error": True}


def test_delay_fault_answers_late(server: StandInServer) -> None:
    server.queue_faults({"delay": 0.4})
    started = time.monotonic()
    message = _ask(server.client())
    assert time.monotonic() - started >= 0.4
    assert message.content[0].text == _expected_text()

    server.queue_faults({"delay": 0.6})
    with pytest.raises(anthropic.APITimeoutError):
        _ask(server.client(timeout=0.2))


def test_fault_queue_is_inspectable_and_validated(server: StandInServer) -> None:
    server.queue_faults({"status": 500}, {"delay": 0.1})
    assert server.http.get("/_standin/faults").json() == [{"status": 500}, {"delay": 0.1}]
    for bad in (
        {"status": 200},
        {"colour": "red"},
        {"retry_after": 1},
        {},
        {"body_base64": "not base64!"},
        {"body_base64": "e30=", "status": 500},
    ):
        response = server.http.post("/_standin/faults", json=[bad])
        assert response.status_code == 400, bad
        assert response.json()["error"]["type"] == "invalid_request_error"
    assert server.http.post("/_standin/faults", json={"status": 500}).status_code == 400
    assert server.http.delete("/_standin/faults").json() == {"cleared": 2}
    assert server.http.get("/_standin/faults").json() == []


def test_a_body_fault_sends_exactly_its_bytes_and_logs_them(server: StandInServer) -> None:
    bodies = [INVALID_UTF8_BODY, LONE_SURROGATE_BODY]
    server.queue_faults(*(body_fault(body) for body in bodies))
    for body in bodies:
        response = server.client().messages.with_raw_response.create(
            model=MODEL, max_tokens=10, messages=[{"role": "user", "content": QUESTION}]
        )
        assert response.http_response.status_code == 200
        assert response.http_response.content == body
        assert response.http_response.headers["x-sunset-stand-in"] == "true"
    log = server.requests_log()
    assert [sent_body(entry) for entry in log] == bodies
    # Text only where the bytes are UTF-8; the lone surrogate is an ASCII escape.
    assert [entry["response_body"] for entry in log] == [None, LONE_SURROGATE_BODY.decode()]


# --------------------------------------------------------------------------- validation & log


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}, "model"),
        ({"model": MODEL, "max_tokens": 10}, "messages"),
        ({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}, "max_tokens"),
        ({"model": MODEL, "max_tokens": 0, "messages": [{"role": "user", "content": "x"}]}, "max"),
        ({"model": MODEL, "max_tokens": 5, "messages": []}, "messages"),
        ({"model": MODEL, "max_tokens": 5, "messages": [{"role": "bot", "content": "x"}]}, "role"),
    ],
)
def test_invalid_requests_get_400(
    server: StandInServer, body: dict[str, Any], fragment: str
) -> None:
    response = server.http.post("/v1/messages", json=body)
    assert response.status_code == 400
    payload = response.json()
    assert payload["type"] == "error"
    assert payload["error"]["type"] == "invalid_request_error"
    assert fragment in payload["error"]["message"]
    assert response.headers["x-sunset-stand-in"] == "true"
    assert server.requests_log()[-1]["status"] == 400


def test_invalid_json_and_sdk_bad_request(server: StandInServer) -> None:
    response = server.http.post(
        "/v1/messages", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    with pytest.raises(anthropic.BadRequestError):
        server.client().messages.create(model=MODEL, max_tokens=10, messages=[])


def test_request_log_never_contains_the_api_key(server: StandInServer) -> None:
    client = server.client(max_retries=1)
    server.queue_faults({"status": 429, "retry_after": 0})
    _ask(client)
    list(_ask(client, stream=True))
    server.http.post(
        "/v1/messages",
        json={"model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
        headers={"x-api-key": API_KEY, "authorization": f"Bearer {API_KEY}"},
    )
    log = server.requests_log()
    assert len(log) == 4
    dumped = json.dumps(log)
    assert API_KEY not in dumped
    for entry in log:
        assert "authorization" not in entry["headers"]
        assert "x-api-key" not in entry["headers"]
        assert entry["path"] == "/v1/messages"
        assert entry["received_at"].endswith("+00:00")
    assert log[1]["stream"] is False and log[2]["stream"] is True
    assert log[1]["json"]["messages"][0]["content"] == QUESTION
    assert log[0]["headers"]["anthropic-version"]  # other headers are kept
