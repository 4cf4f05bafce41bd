"""The model's deprecation slot on Prefect's temporary server (flows/limits.py): the waiting
run does the Repossessor's work that the temporary server leaves undone, and no more."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sunset.cli.local_runs import PREFECT_DEFAULTS

ROOT = Path(__file__).resolve().parent.parent

# Run in a process of its own, as `sunset deprecate` runs: Prefect's settings come from
# the environment at import, and the temporary server starts with the first flow run.
WAIT_FOR_THE_SLOT = """
import json, sys, threading, time
from prefect import flow, get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.sync import concurrency
from flows.limits import deprecation_limit_name, one_deprecation_per_model
from sunset.ledger import open_ledger

ledger = open_ledger(sys.argv[1])
name = deprecation_limit_name("m")

@flow
def hold_the_slot() -> tuple[float, float]:
    began = time.monotonic()
    with one_deprecation_per_model("m", ledger, 2):
        return began, time.monotonic()

seen = {}
hold_the_slot()  # starts the temporary server and makes the limit
with get_client(sync_client=True) as client:
    # A live holder with a lease: the waiting run leaves its slot alone until it lets go.
    held = threading.Event()
    def live_holder() -> None:
        with concurrency(name, lease_duration=300, strict=True):
            held.set()
            time.sleep(8)
        seen["live holder let go"] = time.monotonic()
    holder = threading.Thread(target=live_holder)
    holder.start()
    held.wait(60)
    _, seen["held after the live holder"] = hold_the_slot()
    holder.join()
    # A slot counted with no lease at all, as an earlier temporary server left it.
    client.increment_concurrency_slots([name], 1, "concurrency")
    began, held_at = hold_the_slot()
    seen["waited behind a slot no lease holds"] = held_at - began
    seen["slots left taken"] = client.read_global_concurrency_limit_by_name(name).active_slots
print(json.dumps(seen))
"""


def test_on_the_temporary_server_a_slot_no_lease_holds_is_given_back_but_a_live_one_is_not(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SUNSET_", "PREFECT_"))}
    env |= PREFECT_DEFAULTS | {
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
    }
    done = subprocess.run(
        [sys.executable, "-c", WAIT_FOR_THE_SLOT, f"sqlite:///{tmp_path / 'ledger.db'}"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["held after the live holder"] >= seen["live holder let go"]
    assert seen["waited behind a slot no lease holds"] < 15  # two looks, a recheck apart
    assert "that no lease holds" in done.stdout + done.stderr
    assert seen["slots left taken"] == 0
