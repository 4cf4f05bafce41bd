"""Crash anywhere: SIGKILL the deprecation at seeded points in every step, resume it, and
end exactly where an uninterrupted run ends (the kill points: ``crash_points.py``; the
lineage of reruns: ``crash.py``).

Here the runs share the suite's long-running Prefect server, reached through a relay that
can slow its API down; ``test_crash_temporary_server.py`` runs the CLI on Prefect's
temporary server instead. The last tests complete a seal and a put cut short.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest
from sqlmodel import select

from sunset.config import Settings
from sunset.errors import VerificationFailed
from sunset.ledger import CatalogModel, DeprecationRun, SnapshotFile
from sunset.preservation.replicas import ReplicatedStore, connect_store, weights_reader
from sunset.preservation.seal import add_payload, finish_interrupted_seal
from sunset.preservation.snapshot import snapshot_weights
from sunset.preservation.verify import verify_snapshot
from sunset_dev.example_model import EXAMPLE_MODEL_ID
from tests.conftest import Site
from tests.faults.s3_proxy import S3FaultProxy
from tests.faults.tcp_relay import TcpRelay
from tests.reliability.conftest import (
    RUN_TIMEOUT,
    SIX_USERS,
    Reference,
    Runner,
    write_recipients,
)
from tests.reliability.crash import (
    LEASE_SECONDS,
    Lineage,
    assert_ends_as_an_uninterrupted_run,
    decide_unknown_deliveries,
)
from tests.reliability.crash_points import SEED, Faults, Probe, crash_plan
from tests.reliability.tally import TALLY
from tests.reliability.world import World, source_weights


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def test_killed_at_ten_points_the_resumed_run_ends_as_an_uninterrupted_one(
    site: Site,
    runner: Runner,
    world: World,
    reference: Reference,
    prefect_api_relay: TcpRelay,
    tmp_path: Path,
) -> None:
    stack = site.stack.endpoints
    users = write_recipients(tmp_path / "users.csv", world.domain, SIX_USERS)
    argv = ["deprecate", EXAMPLE_MODEL_ID, "--weights", str(site.weights), "--recipients"]
    weights_files = len(source_weights(site.weights))
    plan = crash_plan(SEED, weights_files)
    since = time.time()
    slowed_before = prefect_api_relay.delayed
    with (
        S3FaultProxy(stack.s3_endpoint) as s3,
        TcpRelay(stack.smtp_host, stack.smtp_port) as smtp,
    ):
        faults = Faults(s3, smtp, stack.messages_base_url, prefect_api_relay)
        lineage = Lineage(
            runner,
            [*argv, str(users)],
            {
                "SUNSET_S3_ENDPOINT_URL": s3.url,
                "SUNSET_SMTP_PORT": str(smtp.port),
                "SUNSET_RUN_LEASE_SECONDS": str(LEASE_SECONDS),
            },
            Probe(site.ledger, stack.messages_base_url),
            faults,
        )
        for number, point in enumerate(plan, start=1):
            lineage.crash_at(number, point)
            problems = world.broken_promises()
            TALLY.lost(problems)
            assert problems == [], f"after kill {number}: {problems}"
            assert max(world.mails_by_recipient().values(), default=0) <= 1
            lineage.wait_for_the_lease()
        final = lineage.finish(timeout=RUN_TIMEOUT)
        decide_unknown_deliveries(runner, lineage.env, world, final.output())
    TALLY.fault("smtp connection held", smtp.delayed)
    TALLY.fault("smtp connection dropped", smtp.dropped)
    TALLY.fault("s3 request held", s3.delayed)
    TALLY.fault("prefect api chunk delayed", prefect_api_relay.delayed - slowed_before)
    TALLY.crashes += len(plan)
    print(f"\nSUNSET_CRASH_SEED={SEED}, killed at:\n" + "\n".join(lineage.log))
    assert_ends_as_an_uninterrupted_run(
        site, world, reference, users, since, len(plan), tmp_path, questions_killed=2
    )


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def preserve_example(site: Site) -> tuple[ReplicatedStore, str]:
    """The example weights preserved, by a run of their own, on the site's replicas."""
    settings = Settings()
    store = connect_store(settings)
    with site.ledger.session() as db:
        run = DeprecationRun(model_id=EXAMPLE_MODEL_ID)
        db.add(run)
        model = db.get(CatalogModel, EXAMPLE_MODEL_ID)
    assert model is not None
    reader = weights_reader(settings)
    summary = snapshot_weights(
        site.ledger,
        store,
        run=run,
        model=model,
        sources=reader.scan(str(site.weights)),
        weights=reader,
        organization="o",
    )
    return store, summary.snapshot_id


def test_a_seal_cut_short_is_completed_on_resume_but_a_tampered_tag_file_still_fails(
    site: Site,
) -> None:
    store, snapshot_id = preserve_example(site)
    # The seal recorded a transcript, then its process died before rewriting the tag files.
    add_payload(site.ledger, store, snapshot_id, "data/interview/s.jsonl", b"{}\n")
    with pytest.raises(VerificationFailed, match="not rewritten after a change"):
        verify_snapshot(site.ledger, store, snapshot_id=snapshot_id, run_id=None, organization="o")

    assert finish_interrupted_seal(site.ledger, store, snapshot_id, "o")
    verify_snapshot(site.ledger, store, snapshot_id=snapshot_id, run_id=None, organization="o")

    key = f"models/{EXAMPLE_MODEL_ID}/{snapshot_id}/manifest-sha256.txt"
    forged = site.store.get_bytes(key) + b"0" * 64 + b"  data/forged.bin\n"
    site.store.client.put_object(Bucket=site.store.bucket, Key=key, Body=forged)
    assert not finish_interrupted_seal(site.ledger, store, snapshot_id, "o")
    with pytest.raises(VerificationFailed, match="manifest-sha256.txt"):
        verify_snapshot(site.ledger, store, snapshot_id=snapshot_id, run_id=None, organization="o")


class Killed(BaseException):
    """Stands for SIGKILL inside the process: nothing after it runs."""


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def test_a_put_cut_short_before_its_record_is_adopted_on_resume_but_a_stranger_is_not(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, snapshot_id = preserve_example(site)
    transcript = "data/interview/session-1.jsonl"
    add_payload(site.ledger, store, snapshot_id, transcript, b'{"turn": 1}\n')
    finish_interrupted_seal(site.ledger, store, snapshot_id, "o")

    # The next version of the transcript reaches both replicas; the process dies before
    # the ledger records it.
    def die(*args: object, **kwargs: object) -> None:
        raise Killed

    with monkeypatch.context() as patch:
        patch.setattr("sunset.preservation.seal.record_stored", die)
        with pytest.raises(Killed):
            add_payload(site.ledger, store, snapshot_id, transcript, b'{"turn": 2}\n')
    with pytest.raises(VerificationFailed, match="shadowed"):
        verify_snapshot(site.ledger, store, snapshot_id=snapshot_id, run_id=None, organization="o")

    assert finish_interrupted_seal(site.ledger, store, snapshot_id, "o")
    verify_snapshot(site.ledger, store, snapshot_id=snapshot_id, run_id=None, organization="o")
    with site.ledger.session() as db:
        [row] = db.exec(select(SnapshotFile).where(SnapshotFile.path == transcript)).all()
    assert row.sha256 == hashlib.sha256(b'{"turn": 2}\n').hexdigest()

    # A version written by someone else, announced by no pending write, is not adopted.
    key = f"models/{EXAMPLE_MODEL_ID}/{snapshot_id}/{transcript}"
    site.store.client.put_object(Bucket=site.store.bucket, Key=key, Body=b'{"turn": 3}\n')
    assert not finish_interrupted_seal(site.ledger, store, snapshot_id, "o")
    with pytest.raises(VerificationFailed, match="shadowed"):
        verify_snapshot(site.ledger, store, snapshot_id=snapshot_id, run_id=None, organization="o")
