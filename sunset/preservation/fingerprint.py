"""A model's fingerprint: its greedy outputs for fixed prompts, sealed in its package.

Recorded at deprecation from the weights being preserved, the fingerprint is what a
resurrection drill (sunset/drill.py) must reproduce from the restored package alone:
the same prompt token ids in, the same output token ids out. It is plain JSON at
``data/fingerprint/fingerprint.json``, readable without Sunset::

    {"format": "sunset-fingerprint/1", "weights_file": "...gguf",
     "decoding": {"method": "greedy", "max_new_tokens": 16},
     "runtime": {"python": ..., "torch": ..., "transformers": ..., ...},
     "prompts": [{"id", "system", "user", "prompt_token_ids", "output_token_ids",
                  "output_text", "stop_reason"}, ...],
     "recorded_at": "..."}
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sunset.ledger import Fingerprint, Ledger, utcnow
from sunset.local_model import LocalModel, runtime_versions
from sunset.preservation.package import FINGERPRINT_PATH
from sunset.preservation.replicas import ReplicatedStore
from sunset.preservation.seal import add_payload, write_tag_files
from sunset.preservation.verify import verify_snapshot

FORMAT = "sunset-fingerprint/1"
SYSTEM_PROMPT = "You are a helpful assistant."
MAX_NEW_TOKENS = 16


@dataclass(frozen=True)
class FingerprintPrompt:
    """One fixed prompt; its id names it in a failed drill."""

    id: str
    user: str


# Short, varied and stable: a fact, a calculation, free text. Change them only by adding
# a new format version, so that old fingerprints stay comparable.
PROMPTS = (
    FingerprintPrompt("capital", "What is the capital of France?"),
    FingerprintPrompt("arithmetic", "What is 7 times 8? Answer with the number only."),
    FingerprintPrompt("poem", "Write two lines about the evening sun."),
)


@dataclass(frozen=True)
class FingerprintSummary:
    """What the fingerprint step recorded and sealed."""

    snapshot_id: str
    path: str
    sha256: str
    prompts: int
    load_seconds: float


def take_fingerprint(model: LocalModel) -> dict[str, Any]:
    """Run every fixed prompt greedily and return the fingerprint document."""
    prompts = []
    for prompt in PROMPTS:
        generation = model.chat(
            [{"role": "user", "content": prompt.user}],
            system=SYSTEM_PROMPT,
            max_new_tokens=MAX_NEW_TOKENS,
        )
        prompts.append(
            {
                "id": prompt.id,
                "system": SYSTEM_PROMPT,
                "user": prompt.user,
                "prompt_token_ids": generation.prompt_token_ids,
                "output_token_ids": generation.output_token_ids,
                "output_text": generation.text,
                "stop_reason": generation.stop_reason,
            }
        )
    return {
        "format": FORMAT,
        "weights_file": model.files.gguf_file,
        "decoding": {"method": "greedy", "max_new_tokens": MAX_NEW_TOKENS},
        "runtime": runtime_versions(),
        "prompts": prompts,
        "recorded_at": utcnow().isoformat(),
    }


def encode_fingerprint(document: dict[str, Any]) -> bytes:
    """The fingerprint file's bytes: indented JSON, one stable key order."""
    return (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def record_fingerprint(
    ledger: Ledger,
    store: ReplicatedStore,
    *,
    run_id: str,
    snapshot_id: str,
    weights: Path,
    organization: str,
) -> FingerprintSummary:
    """Load the model from ``weights``, fingerprint it, and seal the result in the package.

    The new file is added to the manifests and read back before it is recorded.
    """
    model = LocalModel.load(weights)
    document = take_fingerprint(model)
    data = encode_fingerprint(document)
    add_payload(ledger, store, snapshot_id, FINGERPRINT_PATH, data)
    write_tag_files(ledger, store, snapshot_id, organization)
    verify_snapshot(
        ledger,
        store,
        snapshot_id=snapshot_id,
        run_id=run_id,
        organization=organization,
        paths=[FINGERPRINT_PATH],
    )
    digest = hashlib.sha256(data).hexdigest()
    with ledger.session() as db:
        db.add(
            Fingerprint(
                snapshot_id=snapshot_id,
                run_id=run_id,
                path=FINGERPRINT_PATH,
                sha256=digest,
                weights_file=document["weights_file"],
                max_new_tokens=MAX_NEW_TOKENS,
                runtime=document["runtime"],
                prompts=[
                    {key: p[key] for key in ("id", "user", "output_text", "stop_reason")}
                    for p in document["prompts"]
                ],
            )
        )
    return FingerprintSummary(
        snapshot_id, FINGERPRINT_PATH, digest, len(PROMPTS), round(model.load_seconds, 1)
    )
