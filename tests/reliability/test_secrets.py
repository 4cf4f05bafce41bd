"""Secrets: a whole run with distinctive fake secrets, and none of them anywhere else.

Every ``SecretStr`` setting gets a canary value (S3 secret key, SMTP password, API key,
and any secret a later feature adds), the services are set up to require them, and the
run's every trace is searched: the processes' output, Prefect's logs, artifacts and
stored results, the ledger, the report, every object version of the package, the notices,
and the error messages of runs that fail on a wrong secret.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from sqlmodel import select

from sunset.config import Settings
from sunset.ledger import DeprecationRun, Report
from sunset.preservation.store import ObjectStore
from sunset_dev.devstack import start_messages_server, start_smtp
from sunset_dev.example_model import EXAMPLE_MODEL_ID, EXAMPLE_REPLACEMENT_ID
from tests.conftest import Site
from tests.reliability.conftest import CANARY_S3_KEY_ID, CANARY_S3_SECRET, LockedStore, Runner
from tests.reliability.world import ledger_rows, object_versions
from tests.reliability.zygote import Child

SMTP_USER = "sunset-canary-mailer"
WRONG_SMTP_PASSWORD = "sunset-canary-wrong-smtp-password-Jd03"
WRONG_S3_SECRET = "sunset-canary-wrong-s3-secret-Pq55"


def canaries() -> dict[str, str]:
    """A distinctive value for every secret setting there is."""
    secrets = {
        name
        for name, field in Settings.model_fields.items()
        if "SecretStr" in str(field.annotation)
    }
    values = {
        "s3_secret_access_key": CANARY_S3_SECRET,
        "smtp_password": "sunset-canary-smtp-password-Hk27xQ",
        "anthropic_api_key": "sk-ant-sunset-canary-api-key-Ww91pR",
    }
    return {
        name: values.get(name, f"sunset-canary-{name}-{uuid.uuid4().hex[:8]}") for name in secrets
    }


def prefect_traces(flow_run_ids: list[str], since: float) -> dict[str, str]:
    """Prefect's record of the runs: logs, artifacts, parameters, and results on disk."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        LogFilter,
        LogFilterFlowRunId,
    )
    from prefect.settings import PREFECT_LOCAL_STORAGE_PATH

    traces: dict[str, str] = {}
    with get_client(sync_client=True) as client:
        logs = client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=flow_run_ids))
        )
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=flow_run_ids))
        )
        runs = [client.read_flow_run(uuid.UUID(i)) for i in flow_run_ids]
    assert logs and artifacts, "the run left no Prefect logs or artifacts to search"
    traces["prefect logs"] = "\n".join(log.message for log in logs)
    traces["prefect artifacts"] = "\n".join(f"{a.description} {a.data}" for a in artifacts)
    traces["prefect parameters"] = "\n".join(repr(run.parameters) for run in runs)
    storage = Path(str(PREFECT_LOCAL_STORAGE_PATH.value())).expanduser()
    results = [p for p in storage.rglob("*") if p.is_file() and p.stat().st_mtime >= since]
    traces["prefect results"] = "\n".join(p.read_bytes().decode(errors="replace") for p in results)
    return traces


def package_traces(store: ObjectStore) -> str:
    return "\n".join(
        store.get_bytes(key, version).decode(errors="replace")
        for key, version, _ in object_versions(store)
    )


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def test_no_secret_leaves_its_setting(
    site: Site, runner: Runner, locked_store: LockedStore, tmp_path: Path
) -> None:
    secrets = canaries()
    mailbox = tmp_path / "mailbox"
    smtp = start_smtp(mailbox, require_auth=(SMTP_USER, secrets["smtp_password"]))
    # A stand-in that takes the canary key only, so the run must send it to get answers.
    messages = start_messages_server(
        log_path=tmp_path / "messages.log", api_key=secrets["anthropic_api_key"]
    )
    store = ObjectStore(locked_store.store.client, f"secrets-{uuid.uuid4().hex[:12]}")
    store.ensure_bucket()
    # The default replica, "<bucket>-replica", which every deprecation writes to too.
    ObjectStore(store.client, f"{store.bucket}-replica").ensure_bucket()
    env = {f"SUNSET_{name.upper()}": value for name, value in secrets.items()} | {
        "SUNSET_S3_ENDPOINT_URL": locked_store.endpoint,
        "SUNSET_S3_ACCESS_KEY_ID": CANARY_S3_KEY_ID,
        "SUNSET_BUCKET": store.bucket,
        "SUNSET_SMTP_PORT": str(smtp.port),
        "SUNSET_SMTP_USERNAME": SMTP_USER,
        "SUNSET_MESSAGES_BASE_URL": messages.endpoint,
    }
    since = time.time()
    args = ["--weights", str(site.weights), "--recipients", str(site.recipients)]
    try:
        done = runner.run("secrets-run", "deprecate", EXAMPLE_MODEL_ID, *args, **env)
        # The same secrets in play when things go wrong: a refused SMTP login and a refused
        # S3 key, both refused by the services' proof before anything happens.
        wrong_mail = runner.run(
            "secrets-wrong-smtp",
            "deprecate",
            EXAMPLE_REPLACEMENT_ID,
            *args,
            **env | {"SUNSET_SMTP_PASSWORD": WRONG_SMTP_PASSWORD},
        )
        wrong_key = runner.run(
            "secrets-wrong-s3",
            "deprecate",
            EXAMPLE_REPLACEMENT_ID,
            *args,
            **env | {"SUNSET_S3_SECRET_ACCESS_KEY": WRONG_S3_SECRET},
        )
    finally:
        smtp.stop()
        messages.stop()

    assert done.returncode() == 0, done.output()[-3000:]
    assert wrong_mail.returncode() == 1 and "535" in wrong_mail.output()
    assert wrong_key.returncode() == 1 and "was refused" in wrong_key.output()
    with site.ledger.session() as db:
        flow_runs = [r.flow_run_id for r in db.exec(select(DeprecationRun)) if r.flow_run_id]
        reports = [Path(report.local_path) for report in db.exec(select(Report))]
    assert len(flow_runs) == 1
    children: list[Child] = [done, wrong_mail, wrong_key]
    traces = {f"output of {c.name}": c.output() for c in children}
    traces |= prefect_traces(flow_runs, since)
    traces["ledger"] = repr(ledger_rows(site.ledger))
    traces["report"] = "\n".join(
        p.read_text() + p.with_suffix(".html").read_text() for p in reports
    )
    traces["package, every object version"] = package_traces(store)
    notices = [path for path in mailbox.rglob("*") if path.is_file()]
    traces["notices"] = "\n".join(path.read_text(errors="replace") for path in notices)
    assert traces["package, every object version"] and traces["notices"] and traces["report"]

    wrong = {"wrong SMTP password": WRONG_SMTP_PASSWORD, "wrong S3 secret": WRONG_S3_SECRET}
    leaks = [
        f"{setting} in {where}"
        for setting, value in (secrets | wrong).items()
        for where, text in traces.items()
        if value in text
    ]
    assert leaks == []
