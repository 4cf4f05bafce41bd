"""A real open model on the CPU, loaded from its own files only: greedy, deterministic, serial.

Needs the ``local-model`` extra (torch, transformers, gguf, accelerate). A model directory
holds one GGUF file, which carries the weights, the tokenizer and the chat template. It is
loaded offline (``HF_HUB_OFFLINE=1`` and ``local_files_only``): nothing outside the
directory is read, so a model restored from its package runs from the package's bytes.

Decoding is greedy, so the same prompt gives the same tokens on the same runtime, every
time and in every process; that is what a fingerprint and a resurrection drill rely on.
One lock serialises generation: a model answers one request at a time.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import io
import logging
import os
import platform
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sunset.errors import InputError
from sunset.messages_api.request import MessagesRequest, content_text
from sunset.messages_api.responder import ResponderReply

log = logging.getLogger(__name__)

RUNTIME_PACKAGES = ("torch", "transformers", "gguf", "accelerate")
INSTALL_HINT = "pip install 'sunset[local-model]'"


@dataclass(frozen=True)
class ModelFiles:
    """Where a loadable model lies: its directory and the GGUF file in it."""

    directory: Path
    gguf_file: str


def find_model_files(directory: Path) -> ModelFiles:
    """The model in ``directory``: exactly one ``.gguf`` file at its top level.

    Raises:
        InputError: the directory is missing or holds no, or several, GGUF files.
    """
    if not directory.is_dir():
        raise InputError(f"Model directory {directory} does not exist; pass the model's directory.")
    found = sorted(path.name for path in directory.glob("*.gguf") if path.is_file())
    if len(found) != 1:
        held = f"holds {len(found)} .gguf files ({', '.join(found)})" if found else "holds none"
        raise InputError(
            f"Model directory {directory} {held}; the local runtime loads a directory with "
            "exactly one .gguf file (weights, tokenizer and chat template)."
        )
    return ModelFiles(directory.resolve(), found[0])


def require_runtime() -> None:
    """Fail with the install command when the ``local-model`` extra is missing."""
    missing = [name for name in RUNTIME_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise InputError(
            f"Running a model locally needs {', '.join(missing)}, which are not installed; "
            f"install them with: {INSTALL_HINT}"
        )


def runtime_versions() -> dict[str, str]:
    """The versions that decide a model's outputs: Python and the packages that run it."""
    import torch

    versions = {"python": platform.python_version()}
    versions |= {name: importlib.metadata.version(name) for name in RUNTIME_PACKAGES}
    versions["torch_threads"] = str(torch.get_num_threads())
    return versions


@dataclass(frozen=True)
class Generation:
    """One greedy generation: the token ids in and out, the text, and why it stopped."""

    prompt_token_ids: list[int]
    output_token_ids: list[int]
    text: str
    stop_reason: str  # end_turn | max_tokens | stop_sequence
    stop_sequence: str | None = None


class LocalModel:
    """A causal language model and its tokenizer, loaded from one model directory."""

    def __init__(self, files: ModelFiles, tokenizer: Any, model: Any, load_seconds: float) -> None:
        self.files = files
        self.load_seconds = load_seconds
        self._tokenizer = tokenizer
        self._model = model
        self._lock = threading.Lock()

    @property
    def label(self) -> str:
        """The name a reply gives for the model that answered."""
        return f"{self.files.gguf_file} (local weights, greedy decoding)"

    @classmethod
    def load(cls, directory: Path) -> LocalModel:
        """Load the model in ``directory`` from its files alone (about 15-30 s on 2 cores).

        Raises:
            InputError: the runtime is not installed, or the directory holds no model.
        """
        require_runtime()
        files = find_model_files(directory)
        # Offline before transformers is imported: a missing file must fail, not download.
        os.environ["HF_HUB_OFFLINE"] = "1"
        import transformers

        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        log.info("Loading %s from %s", files.gguf_file, files.directory)
        started = time.monotonic()
        progress = io.StringIO()
        # The GGUF conversion draws its own progress bar on stderr; keep the terminal clean.
        with contextlib.redirect_stderr(progress):
            options = {"gguf_file": files.gguf_file, "local_files_only": True}
            tokenizer = transformers.AutoTokenizer.from_pretrained(files.directory, **options)
            model = transformers.AutoModelForCausalLM.from_pretrained(files.directory, **options)
        model.eval()
        seconds = time.monotonic() - started
        log.info("Loaded %s in %.1f s", files.gguf_file, seconds)
        return cls(files, tokenizer, model, seconds)

    def chat(
        self,
        messages: Sequence[dict[str, str]],
        *,
        system: str | None,
        max_new_tokens: int,
        stop_sequences: Sequence[str] = (),
    ) -> Generation:
        """Continue a conversation greedily, through the model's own chat template.

        Without ``system`` the chat template puts in the model's own default system prompt.
        A conversation ending with an assistant message is continued, not answered.
        """
        import torch

        conversation = ([{"role": "system", "content": system}] if system else []) + list(messages)
        continues = conversation[-1]["role"] == "assistant"
        encoded = self._tokenizer.apply_chat_template(
            conversation,
            add_generation_prompt=not continues,
            continue_final_message=continues,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
        )
        prompt_length = encoded["input_ids"].shape[1]
        stop_options: dict[str, Any] = (
            {"stop_strings": list(stop_sequences), "tokenizer": self._tokenizer}
            if stop_sequences
            else {}
        )
        with self._lock, torch.inference_mode():
            output = self._model.generate(
                **encoded,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=self._tokenizer.eos_token_id,
                **stop_options,
            )
        generated = output[0, prompt_length:].tolist()
        return self._finish(encoded["input_ids"][0].tolist(), generated, stop_sequences)

    def _finish(
        self, prompt: list[int], generated: list[int], stop_sequences: Sequence[str]
    ) -> Generation:
        eos = self._tokenizer.eos_token_id
        ended = bool(generated) and generated[-1] == eos
        text = self._tokenizer.decode(generated[:-1] if ended else generated)
        if ended:
            return Generation(prompt, generated, text, "end_turn")
        hits = [(text.find(s), s) for s in stop_sequences if s in text]
        if hits:
            position, sequence = min(hits)
            return Generation(prompt, generated, text[:position], "stop_sequence", sequence)
        return Generation(prompt, generated, text, "max_tokens")


class LocalModelResponder:
    """Answers Messages requests with a :class:`LocalModel`; usage counts its real tokens.

    ``temperature`` is not honoured: decoding is always greedy, so answers are reproducible.
    """

    def __init__(self, model: LocalModel) -> None:
        self.model = model

    def respond(self, request: MessagesRequest) -> ResponderReply:
        """Generate the reply to ``request``, stopping at max_tokens or a stop sequence."""
        messages = [
            {"role": m["role"], "content": content_text(m.get("content"))} for m in request.messages
        ]
        generation = self.model.chat(
            messages,
            system=request.system or None,
            max_new_tokens=request.max_tokens,
            stop_sequences=request.stop_sequences,
        )
        return ResponderReply(
            text=generation.text,
            model=self.model.label,
            stop_reason=generation.stop_reason,
            stop_sequence=generation.stop_sequence,
            input_tokens=len(generation.prompt_token_ids),
            output_tokens=len(generation.output_token_ids),
        )
