"""Crash anywhere, run the way a release manager runs Sunset: ``sunset deprecate`` as a
command of its own, on the temporary Prefect server it starts itself (no PREFECT_API_URL;
Prefect's home under SUNSET_DATA_DIR), killed with that server at seeded points, and
started again with the same command until it ends.

The temporary server dies with each killed run, and the next run starts another on the
same home; one kill takes the command's process alone, as `kill -9 PID` does, and its
server, left running, is stopped by the next run before it starts its own. Each rerun
must get the model's deprecation slot within a bounded time and go on unattended: within
seconds of the ledger proving the last holder dead, or, when the holder was killed before
its slot's lease reached the ledger, once that lease expires.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from prefect.server.concurrency.lease_storage.filesystem import ConcurrencyLeaseStorage
from sqlmodel import select

from flows.limits import SHORTEST_SLOT_LEASE_SECONDS
from sunset.cli.local_runs import stop_orphaned_temporary_servers
from sunset.ledger import Snapshot, SnapshotFile
from sunset.runs.steps import NOTIFY_STEP, PREFLIGHT_STEP, SNAPSHOT_STEP
from sunset_dev.example_model import EXAMPLE_MODEL_ID
from sunset_dev.local_servers import start_smtp
from sunset_dev.processes import ServiceHandle
from tests.conftest import Site
from tests.faults.s3_proxy import S3FaultProxy
from tests.faults.tcp_relay import TcpRelay
from tests.reliability.conftest import SIX_USERS, CliRunner, Reference, write_recipients
from tests.reliability.crash import (
    LEASE_SECONDS,
    Lineage,
    assert_ends_as_an_uninterrupted_run,
    decide_unknown_deliveries,
)
from tests.reliability.crash_points import (
    SEED,
    CrashPoint,
    Draw,
    Faults,
    Probe,
    before_the_report,
    files_rehashed,
    notice_connection_held,
    question_in_flight,
    weights_upload_held,
    writing_tag_files,
)
from tests.reliability.tally import TALLY
from tests.reliability.world import World, source_weights

# From a rerun's start to its holding the slot: Python, the CLI's own checks and a fresh
# temporary server (20-40 s on a loaded two-core machine), with the ledger's proof at hand.
SLOT_BOUND = 90.0
# From a rerun's flow finding the slot taken to its freeing it, once the ledger proves
# the holder dead: a look or two of the waiting loop.
PROOF_SECONDS = 10.0
# To a kill point (or to the end): the bound above, a slot lease that may have to expire,
# and the work of a step or two through slowed services.
POINT_TIMEOUT = 240.0
FINAL_TIMEOUT = 240.0


class LeaseFiles:
    """The model's slot as the temporary servers keep it: lease files under PREFECT_HOME."""

    def __init__(self, prefect_home: Path) -> None:
        self.storage = ConcurrencyLeaseStorage(prefect_home / "concurrency_leases")
        self.seen: set[str] = set()

    def holders(self) -> dict[str, str]:
        """Live leases (there is one limit in this home): lease id -> holder's flow run."""

        async def read() -> dict[str, str]:
            found = {}
            for lease_id in await self.storage.read_active_lease_ids():
                lease = await self.storage.read_lease(lease_id)
                if lease and lease.metadata and lease.metadata.holder:
                    found[str(lease_id)] = str(lease.metadata.holder.id)
            return found

        return asyncio.run(read()) if self.storage.storage_path.exists() else {}

    def taken_by_a_newcomer(self) -> bool:
        holders = set(self.holders().values())
        newcomers = holders - self.seen
        self.seen |= holders
        return bool(newcomers)

    def bound(self, after_stranding: bool) -> float:
        return SLOT_BOUND + (SHORTEST_SLOT_LEASE_SECONDS if after_stranding else 0.0)


def slot_leased_not_recorded(leases: LeaseFiles) -> CrashPoint:
    return CrashPoint(
        PREFLIGHT_STEP,
        "the slot leased, its lease id not yet in the ledger (the bucket checks held)",
        prepare=lambda f: setattr(f.s3, "latency", 1.0),
        kill_when=lambda p, s: bool(set(leases.holders()) - p.recorded_slot_leases()),
        strands_slot=True,
    )


class HandoverHold:
    """An SMTP server that stores its first message, then holds the answer to its DATA:
    once put behind the relay, the next notice is in the middle of its hand-over."""

    def __init__(self, maildir: Path, log: Path) -> None:
        self.maildir, self.log = maildir, log
        self.server: ServiceHandle | None = None

    def put_behind(self, relay: TcpRelay) -> None:
        self.server = start_smtp(self.maildir, log_path=self.log, stall_reply_at=1)
        relay.upstream = ("127.0.0.1", self.server.port)

    def held(self) -> int:
        """Answers held so far (the server says so before it holds one)."""
        return self.log.read_text().count("stalling message") if self.log.exists() else 0

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


def during_a_handover(hold: HandoverHold) -> CrashPoint:
    return CrashPoint(
        NOTIFY_STEP,
        "during an SMTP hand-over: a notice stored by the relay, its answer held",
        prepare=lambda f: hold.put_behind(f.smtp),
        kill_when=lambda p, s: p.handed_over() > 0 and hold.held() > 0,
    )


def hold_weights_replies(faults: Faults) -> None:
    """Every weights upload reaches the store; its answer never reaches the process."""
    faults.s3.modes, faults.s3.rate, faults.s3.stall_seconds = ("stall",), 1.0, 30.0
    faults.s3.scope = lambda method, path: method == "PUT" and "/data/weights/" in path


def between_upload_and_record(world: World) -> CrashPoint:
    def unrecorded_weights(probe: Probe, since: dict[str, float]) -> bool:
        with probe.ledger.session() as db:
            snapshot = db.exec(select(Snapshot)).one_or_none()
            paths = db.exec(select(SnapshotFile.path)).all()
        if snapshot is None:
            return False
        listing = world.store.client.list_objects_v2(
            Bucket=world.store.bucket, Prefix=f"{snapshot.prefix}data/weights/"
        )
        stored = {item["Key"].removeprefix(snapshot.prefix) for item in listing.get("Contents", [])}
        return bool(stored - set(paths))

    return CrashPoint(
        SNAPSHOT_STEP,
        "between an upload and its record: a weights file stored, the store's answer held; "
        "the command killed alone, its temporary server left running",
        prepare=hold_weights_replies,
        kill_when=unrecorded_weights,
        command_alone=True,
    )


@dataclass(frozen=True)
class Hazards:
    """What the kill points of a plan need to hold a run where it is to be killed."""

    leases: LeaseFiles
    handover: HandoverHold
    world: World
    draw: Draw
    weights_files: int


def every_point(h: Hazards) -> list[CrashPoint]:
    """Ten kill points, in the order the run reaches them."""
    return [
        slot_leased_not_recorded(h.leases),
        notice_connection_held(h.draw.sent),
        during_a_handover(h.handover),
        between_upload_and_record(h.world),
        weights_upload_held(h.draw.files),
        writing_tag_files(h.weights_files),
        files_rehashed(h.draw.checks),
        question_in_flight(h.draw.first, held_after=h.draw.first),
        question_in_flight(
            h.draw.second, held_after=h.draw.second - h.draw.first, note=" (resumed interview)"
        ),
        before_the_report(),
    ]


def three_points(h: Hazards) -> list[CrashPoint]:
    """The kills that a temporary server makes hardest to resume from."""
    return [
        slot_leased_not_recorded(h.leases),
        during_a_handover(h.handover),
        between_upload_and_record(h.world),
    ]


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("plan", "questions_killed"),
    [
        pytest.param(three_points, 0, id="three-points"),
        pytest.param(every_point, 2, id="ten-points", marks=pytest.mark.long),
    ],
)
def test_on_the_temporary_server_every_rerun_after_a_kill_finishes_unattended(
    site: Site,
    cli_runner: CliRunner,
    world: World,
    reference: Reference,
    tmp_path: Path,
    plan: Callable[[Hazards], list[CrashPoint]],
    questions_killed: int,
) -> None:
    stack = site.stack.endpoints
    users = write_recipients(tmp_path / "users.csv", world.domain, SIX_USERS)
    argv = ["deprecate", EXAMPLE_MODEL_ID, "--weights", str(site.weights), "--recipients"]
    weights_files = len(source_weights(site.weights))
    leases = LeaseFiles(site.data_dir / "prefect")
    handover = HandoverHold(stack.maildir, tmp_path / "smtp-hold.log")
    draw = Draw.of(SEED, weights_files)
    points = plan(Hazards(leases, handover, world, draw, weights_files))
    since = time.time()
    try:
        with (
            S3FaultProxy(stack.s3_endpoint) as s3,
            TcpRelay(stack.smtp_host, stack.smtp_port) as smtp,
        ):
            lineage = Lineage(
                cli_runner,
                [*argv, str(users)],
                {
                    "SUNSET_S3_ENDPOINT_URL": s3.url,
                    "SUNSET_SMTP_PORT": str(smtp.port),
                    "SUNSET_RUN_LEASE_SECONDS": str(LEASE_SECONDS),
                },
                Probe(site.ledger, stack.messages_base_url),
                Faults(s3, smtp, stack.messages_base_url),
                point_timeout=POINT_TIMEOUT,
                slots=leases,
            )
            for number, point in enumerate(points, start=1):
                lineage.crash_at(number, point)
                problems = world.broken_promises()
                TALLY.lost(problems)
                assert problems == [], f"after kill {number}: {problems}"
                assert max(world.mails_by_recipient().values(), default=0) <= 1
                lineage.wait_for_the_lease()
            final = lineage.finish(timeout=FINAL_TIMEOUT)
            decided = decide_unknown_deliveries(cli_runner, lineage.env, world, final.output())
    finally:
        handover.stop()
    TALLY.fault("smtp connection held", smtp.delayed)
    TALLY.fault("smtp answer held after the data", handover.held())
    TALLY.fault("s3 request held", s3.delayed)
    TALLY.fault("s3 answer held after the write", s3.injected["stall"])
    TALLY.crashes += len(points)
    print(f"\nSUNSET_CRASH_SEED={SEED}, killed at:\n" + "\n".join(lineage.log))
    # The kill during the hand-over left that email of unknown fate: the last run's
    # outcome named it and the command, and it was decided (the relay holds it).
    assert "sunset deliveries decide" in " ".join(final.output().split())
    assert decided == 1

    # What each rerun did at the slot, by its own log: found it taken, then freed it
    # within seconds of starting to wait, on the ledger's proof (the recorded lease of a
    # run whose ledger lease lapsed) or, after a kill that left the slot's lease
    # unrecorded, as soon as Prefect's lease expired.
    reruns = [child for child in cli_runner.started[1:] if child.name.startswith("crash")]
    freed_on = [slot_freed(child.output()) for child in reruns]
    assert freed_on[0] is not None and freed_on[0][0] == "Revoked the expired lease"
    assert freed_on[0][1] <= SHORTEST_SLOT_LEASE_SECONDS + PROOF_SECONDS
    for proof in freed_on[1:]:
        assert proof is not None and proof[0] == "Freed the"
        assert proof[1] <= PROOF_SECONDS
    assert_ends_as_an_uninterrupted_run(
        site, world, reference, users, since, len(points), tmp_path, questions_killed
    )
    # The temporary server of the command killed alone outlived it; the next run stopped
    # it before starting its own, and none is left on the data directory's home.
    stopped = [c for c in cli_runner.started if ORPHAN_STOPPED in " ".join(c.output().split())]
    assert len(stopped) == 1, [c.name for c in stopped]
    assert stop_orphaned_temporary_servers(site.data_dir / "prefect") == []


ORPHAN_STOPPED = "that a killed command had left running on this data directory"
LOG_LINE = re.compile(r"^(\d\d:\d\d:\d\d\.\d{3}) \| \w+ +\| .*? - (.*)$", re.M)
WAITS = "Another deprecation run of"
FREES = ("Freed the", "Revoked the expired lease")


def slot_freed(output: str) -> tuple[str, float] | None:
    """How a run freed the slot it found taken, and how many seconds after it began to
    wait; None if it did not say both."""
    waited_at = None
    for clock, message in LOG_LINE.findall(output):
        seconds = sum(float(part) * 60**i for i, part in enumerate(reversed(clock.split(":"))))
        if message.startswith(WAITS):
            waited_at = seconds
        elif waited_at is not None and message.startswith(FREES):
            return next(f for f in FREES if message.startswith(f)), seconds - waited_at
    return None
