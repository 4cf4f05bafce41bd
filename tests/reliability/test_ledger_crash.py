"""The ledger under crashes and concurrency, on SQLite and on PostgreSQL.

A process killed in the middle of a multi-row transaction leaves no half of it behind;
two models deprecated at the same time by two processes share a ledger and a bucket
without touching each other's records.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import select

from sunset.ledger import (
    AttemptState,
    CatalogModel,
    Delivery,
    DeprecationRun,
    FixityEvent,
    InterviewSession,
    InterviewTurn,
    Ledger,
    PreservedObject,
    Report,
    RunState,
    ServingStatus,
    Snapshot,
    SnapshotFile,
    StatusTransition,
    StepAttempt,
    open_ledger,
    utcnow,
)
from sunset.runs.steps import FLIP_STEP, NOTIFY_STEP, SNAPSHOT_STEP, VERIFY_STEP
from sunset.serving.guards import flip_status
from sunset_dev.example_model import EXAMPLE_MODEL_ID, EXAMPLE_REPLACEMENT_ID
from tests.conftest import Site
from tests.faults.tcp_relay import TcpRelay
from tests.reliability.children import begin_new_request
from tests.reliability.conftest import Runner, wait_until
from tests.reliability.tally import TALLY
from tests.reliability.world import (
    TURN_IDS,
    World,
    bag_problems,
    ledger_rows,
    source_weights,
    weights_of,
)
from tests.reliability.zygote import Zygote

MODEL_B = "sunset-concurrent-b"


def ready_to_retire(ledger: Ledger) -> str:
    """A live run of model m1 whose every guard for retirement holds."""
    earlier = utcnow() - timedelta(minutes=5)
    digests = {"size": 1, "sha256": "0" * 64, "sha512": "0" * 128, "crc64nvme": "AAAAAAAAAAA="}
    with ledger.session() as db:
        db.add(CatalogModel(id="m1", display_name="M1"))
        run = DeprecationRun(model_id="m1", lease_expires_at=utcnow() + timedelta(hours=1))
        db.add(run)
        db.flush()
        db.add(StepAttempt(run_id=run.id, step=NOTIFY_STEP, attempt=1, state="completed"))
        snapshot = Snapshot(
            id="snap-1",
            run_id=run.id,
            model_id="m1",
            endpoint="e",
            bucket="b",
            prefix="p/",
            state="stored",
        )
        db.add(snapshot)
        db.flush()
        path = "data/weights/w.bin"
        db.add(SnapshotFile(snapshot_id="snap-1", path=path, stored_at=earlier, **digests))
        db.add(
            PreservedObject(
                snapshot_id="snap-1",
                replica="primary",
                endpoint="e",
                bucket="b",
                path=path,
                retain_until=utcnow() + timedelta(days=365),
                stored_at=earlier,
                **digests,
            )
        )
        for method in ("fast", "deep"):
            db.add(
                FixityEvent(
                    snapshot_id="snap-1",
                    replica="primary",
                    bucket="b",
                    path=path,
                    method=method,
                    outcome="ok",
                )
            )
        db.add(
            Report(
                run_id=run.id,
                snapshot_id="snap-1",
                version=1,
                key="k",
                sha256="0" * 64,
                local_path="/r.md",
            )
        )
    return run.id


def two_failed_runs(ledger: Ledger) -> str:
    """Model m1 with two failed runs whose parameters differ from the new request's.

    Returns no run id: superseding them is begun from a request, not from a run.
    """
    with ledger.session() as db:
        db.add(CatalogModel(id="m1", display_name="M1"))
        for weights in ("/old-1", "/old-2"):
            db.add(
                DeprecationRun(
                    model_id="m1",
                    parameters={"weights": weights},
                    state=RunState.FAILED,
                )
            )
    return ""


@pytest.mark.parametrize("operation", ["flip", "supersede"])
def test_a_process_killed_inside_a_transaction_leaves_none_of_it(
    ledger_url: str, zygote: Zygote, tmp_path: Path, operation: str
) -> None:
    ledger = open_ledger(ledger_url)
    run_id = (ready_to_retire if operation == "flip" else two_failed_runs)(ledger)
    before = ledger_rows(ledger)
    ready = tmp_path / "flushed"

    child = zygote.spawn(
        f"tx-{operation}",
        call="tests.reliability.children:stop_before_commit",
        kwargs={
            "ledger_url": ledger_url,
            "operation": operation,
            "run_id": run_id,
            "ready_file": str(ready),
        },
        env=zygote.env,
    )
    wait_until(lambda: ready.exists() or child.returncode() is not None, 60, "the flush")
    assert ready.exists(), child.output()
    child.kill()
    TALLY.crashes += 1

    after = ledger_rows(ledger)
    TALLY.lost(sum(1 for table in before if before[table] != after[table]))
    assert after == before
    # The killed writer left no lock behind: the same transaction now goes through whole.
    if operation == "flip":
        flip_status(ledger, run_id=run_id, target=ServingStatus.RETIRED, actor="t", reason="r")
        with ledger.session() as db:
            assert db.get(CatalogModel, "m1").serving_status == "retired"  # type: ignore[union-attr]
            assert len(db.exec(select(StatusTransition)).all()) == 1
    else:
        begin_new_request(ledger, flow_run_id="after")
        with ledger.session() as db:
            states = sorted(r.state for r in db.exec(select(DeprecationRun)))
        assert states == ["running", "superseded", "superseded"]
    if ledger_url.startswith("sqlite"):
        with ledger.engine.connect() as connection:
            assert connection.execute(sa.text("PRAGMA integrity_check")).scalar() == "ok"
    ledger.dispose()


def odd_weights(directory: Path) -> Path:
    """Weights whose names and sizes stretch a package: empty, nested, non-ASCII, '%'."""
    (directory / "nested" / "deeper").mkdir(parents=True)
    (directory / "config.json").write_text('{"hidden_size": 8}\n')
    (directory / "empty-marker.bin").write_bytes(b"")  # preserved: a file, however small
    (directory / "nested" / "deeper" / "gewichte-ü-名前.bin").write_bytes(bytes(range(256)) * 9)
    (directory / "100% weights v2.bin").write_bytes(b"\x00\xff" * 5000)
    return directory


def test_two_models_deprecated_at_once_do_not_interfere(
    site: Site, runner: Runner, world: World, tmp_path: Path
) -> None:
    weights_b = odd_weights(tmp_path / "weights-b")
    users_b = tmp_path / "users-b.csv"
    users_b.write_text(
        "email,name\n" + "".join(f"b-{n}@{world.domain},B {n}\n" for n in ("kim", "lee", "ray")),
        encoding="utf-8",
    )
    with site.ledger.session() as db:
        db.add(
            CatalogModel(
                id=MODEL_B, display_name="Concurrent B", replacement_id=EXAMPLE_REPLACEMENT_ID
            )
        )
    stack = site.stack.endpoints

    # Model A's notices wait at a relay until a second request for A has queued, so A is
    # surely still running when that request arrives.
    with TcpRelay(stack.smtp_host, stack.smtp_port) as slow_mail:
        slow_mail.spare_next = 2  # A's preflight logs in (the CLI's quick check, the flow's)
        slow_mail.hold()
        a = runner.start(
            "model-a",
            "deprecate",
            EXAMPLE_MODEL_ID,
            "--weights",
            str(site.weights),
            "--recipients",
            str(site.recipients),
            SUNSET_SMTP_PORT=str(slow_mail.port),
        )
        b = runner.start(
            "model-b",
            "deprecate",
            MODEL_B,
            "--weights",
            str(weights_b),
            "--recipients",
            str(users_b),
        )
        wait_until(lambda: len(world.rows(DeprecationRun)) == 2, 60, "both runs to begin")
        # A second request for A, while A runs, queues at A's concurrency limit.
        again = runner.start(
            "model-a-again",
            "deprecate",
            EXAMPLE_MODEL_ID,
            "--weights",
            str(site.weights),
            "--recipients",
            str(site.recipients),
        )
        wait_until(
            lambda: "holds the concurrency limit" in again.output(), 60, "the second A to queue"
        )
        slow_mail.release()
        assert a.wait(120) == 0, a.output()[-3000:]
        assert b.wait(120) == 0, b.output()[-3000:]
        assert again.wait(120) == 0, again.output()[-3000:]
    TALLY.fault("smtp connection held", slow_mail.delayed)
    assert slow_mail.delayed >= 1

    # Once A was done, the queued request found nothing left to do, did nothing, and said so.
    last_line = again.stdout.read_text().strip().splitlines()[-1]
    assert last_line == f"{EXAMPLE_MODEL_ID} is already deprecated; there is nothing to do."

    runs = {r.model_id: r for r in world.rows(DeprecationRun)}
    assert set(runs) == {EXAMPLE_MODEL_ID, MODEL_B}
    assert all(r.state == RunState.COMPLETED for r in runs.values())
    with site.ledger.session() as db:
        snapshots = {s.model_id: s for s in db.exec(select(Snapshot))}
        transitions = db.exec(select(StatusTransition)).all()
        attempts = db.exec(select(StepAttempt)).all()
        deliveries = db.exec(select(Delivery)).all()
        sessions = db.exec(select(InterviewSession)).all()
        turns = db.exec(select(InterviewTurn)).all()
    assert sorted((t.model_id, t.run_id, t.to_status) for t in transitions) == sorted(
        (m, r.id, "deprecated") for m, r in runs.items()
    )
    for model_id, run in runs.items():
        assert snapshots[model_id].run_id == run.id
        assert snapshots[model_id].prefix.startswith(f"models/{model_id}/")
        steps = [
            a.step for a in attempts if a.run_id == run.id and a.state == AttemptState.COMPLETED
        ]
        assert len(steps) == len(set(steps))  # each step completed once
        assert set(steps) >= {NOTIFY_STEP, SNAPSHOT_STEP, VERIFY_STEP, FLIP_STEP}
        mine = [s.id for s in sessions if s.run_id == run.id]
        assert len([t for t in turns if t.session_id in mine]) == len(TURN_IDS)
    assert {(d.model_id, d.run_id) for d in deliveries} == {(m, r.id) for m, r in runs.items()}

    mails = world.mails_by_recipient()
    emails = [line.split(",")[0] for line in site.recipients.read_text().splitlines()[1:]]
    emails += [line.split(",")[0] for line in users_b.read_text().splitlines()[1:]]
    lost = world.broken_promises() + [email for email in emails if not mails[email]]
    for model_id, weights in ((EXAMPLE_MODEL_ID, site.weights), (MODEL_B, weights_b)):
        package = world.package(model_id)
        expected_weights = source_weights(weights)
        lost += [p for p, d in expected_weights.items() if weights_of(package).get(p) != d]
        lost += bag_problems(package, tmp_path / f"bag-{model_id}")
    TALLY.lost(lost)
    assert lost == []
    assert mails == {email: 1 for email in emails}
    # The zero-byte file is preserved as what it is: an empty file with the empty digest.
    manifest = world.package(MODEL_B)["manifest-sha256.txt"].decode()
    empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert f"{empty}  data/weights/empty-marker.bin" in manifest.splitlines()
