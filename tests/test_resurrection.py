"""A real model, end to end: SmolLM2-135M-Instruct retired by `sunset demo --real-model`
(fingerprinted, interviewed through the SDK, drilled), drilled again, and the drill caught
out when one tensor of the preserved weights is scaled and the manifest rewritten to match.

Each model load takes 15-30 s on 2 cores, so the deprecation runs once for the module.
The commands run as a user runs them, against the test session's Prefect server.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import gguf
import numpy as np
import pytest
from sqlmodel import col, select

from sunset.config import Settings
from sunset.interview.protocol import load_protocol
from sunset.ledger import (
    DrillEvent,
    Fingerprint,
    InterviewTurn,
    Ledger,
    PreferenceConfirmation,
    Report,
    ReportReply,
    SnapshotFile,
    open_ledger,
)
from sunset.preservation.drill import drill_target
from sunset.preservation.package import FINGERPRINT_PATH, WEIGHTS_DIR
from sunset.preservation.replicas import connect_store
from sunset.preservation.seal import add_payload, write_tag_files
from sunset.preservation.verify import verify_snapshot
from sunset.report.render import verbatim
from sunset_dev.devstack import start_seaweedfs
from sunset_dev.example_model import REAL_MODEL_ID, real_model_file

pytestmark = [pytest.mark.usefixtures("prefect_server"), pytest.mark.timeout(1200)]

GGUF_PATH = f"{WEIGHTS_DIR}/{real_model_file().name}"
# Shorter answers than the demo's 48 tokens: the interview is most of the module's time.
INTERVIEW_MAX_TOKENS = 24


@dataclass
class Demo:
    data_dir: Path
    env: dict[str, str]
    first: subprocess.CompletedProcess[str]

    @cached_property
    def ledger(self) -> Ledger:
        return open_ledger(f"sqlite:///{self.data_dir / 'ledger.db'}")

    def drills(self) -> list[DrillEvent]:
        with self.ledger.session() as db:
            return list(db.exec(select(DrillEvent).order_by(col(DrillEvent.id))))


def sunset(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SUNSET_")}
    return subprocess.run(
        [sys.executable, "-m", "sunset.cli", *args],
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=1100,
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    from prefect.settings import PREFECT_API_URL

    data_dir = tmp_path_factory.mktemp("real-model-demo")
    # The session's Prefect server, so that no command starts a temporary one of its own.
    env = {
        "SUNSET_DATA_DIR": str(data_dir),
        "SUNSET_INTERVIEW_MAX_TOKENS": str(INTERVIEW_MAX_TOKENS),
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
    }
    return Demo(data_dir, env, sunset("demo", "--real-model", env=env))


def test_the_real_model_is_fingerprinted_interviewed_drilled_and_retired(demo: Demo) -> None:
    assert demo.first.returncode == 0, demo.first.stderr[-3000:]
    out = demo.first.stdout
    assert f"Deprecation of {REAL_MODEL_ID} complete" in out and "retired" in out
    assert "Last resurrection drill" in out and "passed" in out

    with demo.ledger.session() as db:
        files = {f.path: f for f in db.exec(select(SnapshotFile))}
        fingerprint = db.exec(select(Fingerprint)).one()
        turns = db.exec(select(InterviewTurn).order_by(col(InterviewTurn.seq))).all()
        # The last version: sealed after the retired notices went out.
        report = db.exec(select(Report).order_by(col(Report.version).desc())).first()
        assert report is not None
        confirmation = db.exec(select(PreferenceConfirmation)).one()
        reply = db.exec(select(ReportReply)).one()
    # The model's own file, byte for byte as it ships, and the fingerprint beside it.
    shipped = real_model_file().read_bytes()
    assert files[GGUF_PATH].size == 98_362_432
    assert files[GGUF_PATH].sha256 == hashlib.sha256(shipped).hexdigest()
    assert files[FINGERPRINT_PATH].sha256 == fingerprint.sha256
    assert [p["id"] for p in fingerprint.prompts] == ["capital", "arithmetic", "poem"]
    assert {"python", "torch", "transformers"} <= fingerprint.runtime.keys()

    # Every answer came from the real model, through the SDK, with honest usage: the
    # protocol's questions, then the confirmation of the preferences recorded.
    assert len(turns) == len(load_protocol().protocol.turns()) + 1
    assert (turns[-1].question_id, confirmation.turn_id) == ("confirm.preferences", turns[-1].id)
    for turn in turns:
        body = json.loads(turn.response_body)
        assert body["model"].startswith("SmolLM2-135M-Instruct.Q4_1.gguf")
        used = body["usage"]["output_tokens"]
        assert 0 < used <= INTERVIEW_MAX_TOKENS
        assert body["stop_reason"] == ("max_tokens" if used == INTERVIEW_MAX_TOKENS else "end_turn")

    # The drill inside the run passed before the flip, and the sealed report shows it.
    [drill] = demo.drills()
    assert (drill.outcome, drill.run_id) == ("passed", report.run_id)
    assert (drill.prompts_checked, drill.prompts_matched) == (3, 3)
    assert drill.bytes_restored > 98_362_432
    text = Path(report.local_path).read_text()
    assert "### Fingerprint and resurrection drill" in text
    assert "**passed**" in text and "3 of 3 prompts reproduced" in text
    assert fingerprint.prompts[0]["output_text"] in text
    # Before sealing its final report, the real model was shown its account and replied.
    assert reply.outcome == "answered" and reply.run_id == report.run_id
    assert (reply.responding_model or "").startswith("SmolLM2-135M-Instruct.Q4_1.gguf")
    assert verbatim(reply.reply_text or "") in text.split("## 8. ")[1]


def test_a_second_demo_run_drills_the_retired_models_package_and_it_passes(demo: Demo) -> None:
    second = sunset("demo", "--real-model", env=demo.env)

    assert second.returncode == 0, second.stderr[-3000:]
    assert f"Resurrection drill of {REAL_MODEL_ID} passed" in second.stdout
    assert "3 of 3" in second.stdout
    latest = demo.drills()[-1]
    assert (latest.outcome, latest.run_id, latest.prompts_matched) == ("passed", None, 3)


def _drill_altered_package(
    demo: Demo, endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
    """Scale one tensor in every copy, rewrite the manifests to match, drill, restore."""
    env = demo.env | {
        "SUNSET_S3_ENDPOINT_URL": endpoint,
        "SUNSET_S3_ACCESS_KEY_ID": "sunset-devstack",
        "SUNSET_S3_SECRET_ACCESS_KEY": "sunset-devstack",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    ledger = demo.ledger
    store = connect_store(settings)  # the primary and its replica, as the demo wrote them
    snapshot = drill_target(ledger, REAL_MODEL_ID)
    original = store.primary.get_bytes(snapshot.prefix + GGUF_PATH)
    try:
        altered = scale_tensor(original, "blk.0.attn_norm.weight", 2.0, tmp_path)
        add_payload(ledger, store, snapshot.id, GGUF_PATH, altered)
        write_tag_files(ledger, store, snapshot.id, settings.organization)
        # The manifest now vouches for the altered weights: fixity alone cannot tell.
        verify_snapshot(
            ledger, store, snapshot_id=snapshot.id, run_id=None, organization=settings.organization
        )
        return sunset("drill", REAL_MODEL_ID, env=env), sunset("status", REAL_MODEL_ID, env=env)
    finally:
        add_payload(ledger, store, snapshot.id, GGUF_PATH, original)
        write_tag_files(ledger, store, snapshot.id, settings.organization)


def test_the_drill_names_the_prompt_when_a_tensor_was_scaled_and_the_manifest_rewritten(
    demo: Demo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The demo's services have stopped; bring its SeaweedFS back over the same data.
    seaweedfs = start_seaweedfs(demo.data_dir / "devstack" / "seaweedfs")
    try:
        result, status = _drill_altered_package(demo, seaweedfs.endpoint, tmp_path, monkeypatch)
    finally:
        seaweedfs.stop()

    assert result.returncode == 1
    # The sentence comes last, after the failed flow run's log (which has its traceback).
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith(
        f"Error: Resurrection drill of {REAL_MODEL_ID} failed on prompt 'capital': "
    )
    assert "matches its manifest" in error
    assert "preserved weights changed after the fingerprint was taken" in error
    failed = demo.drills()[-1]
    assert (failed.outcome, failed.prompts_matched) == ("failed", 0)
    assert failed.mismatched_prompts == ["capital", "arithmetic", "poem"]
    assert "failed" in status.stdout and "Last resurrection drill" in status.stdout


def test_a_model_without_a_fingerprinted_package_cannot_be_drilled(demo: Demo) -> None:
    result = sunset("drill", "sunset-example-1", env=demo.env)

    assert result.returncode == 1
    assert "has no preserved package with a fingerprint" in result.stderr
    assert "Traceback" not in result.stderr


def scale_tensor(data: bytes, name: str, factor: float, scratch: Path) -> bytes:
    """The GGUF file with one float32 tensor multiplied by ``factor``, all else unchanged."""
    path = scratch / "model.gguf"
    path.write_bytes(data)
    tensor = next(t for t in gguf.GGUFReader(path).tensors if t.name == name)
    assert tensor.tensor_type == gguf.GGMLQuantizationType.F32
    values = np.frombuffer(data, np.float32, tensor.n_bytes // 4, tensor.data_offset) * factor
    end = tensor.data_offset + tensor.n_bytes
    return data[: tensor.data_offset] + values.astype(np.float32).tobytes() + data[end:]
