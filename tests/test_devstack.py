"""The local services really start, really work, and really stop."""

from __future__ import annotations

import json
import os
import smtplib
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest

from sunset_dev import devstack, seaweedfs
from sunset_dev.devstack import (
    DevStack,
    DevStackError,
    ServiceHandle,
    read_mailbox,
    s3_client,
    start_seaweedfs,
    start_smtp,
)
from sunset_dev.processes import process_start_time

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    with DevStack(tmp_path_factory.mktemp("devstack")) as running:
        yield running


def test_the_exported_api_key_is_the_one_the_stand_in_takes(stack: DevStack) -> None:
    from pydantic import SecretStr

    from sunset.errors import InputError
    from sunset.interview.client import AnthropicMessages

    exported = stack.endpoints.as_env()
    assert exported["SUNSET_ANTHROPIC_API_KEY"] == devstack.STAND_IN_API_KEY
    for key, accepted in ((exported["SUNSET_ANTHROPIC_API_KEY"], True), ("sk-other", False)):
        client = AnthropicMessages(
            base_url=exported["SUNSET_MESSAGES_BASE_URL"], api_key=SecretStr(key)
        )
        if accepted:
            client.check_model("acme-chat-1", role="the model", fix="serve it")
        else:
            with pytest.raises(InputError, match="refused the API key"):
                client.check_model("acme-chat-1", role="the model", fix="serve it")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _s3(endpoint: str, access_key: str = "any", secret_key: str = "any") -> Any:
    return s3_client(endpoint, access_key, secret_key, retries={"total_max_attempts": 1})


def _mail(subject: str, to: str = "user@example.org") -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Sunset <sunset@localhost>"
    message["To"] = to
    message["Subject"] = subject
    message.set_content("Model m-1 retires on 2027-01-31.\n.a line starting with a dot\n")
    return message


def test_state_file_records_the_running_services(stack: DevStack) -> None:
    state = json.loads(stack.state_file.read_text())
    assert set(state["services"]) == {"seaweedfs", "smtp", "messages"}
    for name, pid in stack.pids.items():
        assert state["services"][name]["pid"] == pid
        assert _alive(pid)
    endpoints = stack.endpoints
    assert state["endpoints"]["s3_endpoint"] == endpoints.s3_endpoint
    assert state["endpoints"]["smtp_port"] == endpoints.smtp_port
    assert endpoints.maildir == stack.data_dir / "mailbox"
    weed_ports = state["services"]["seaweedfs"]["ports"]
    assert len(set(weed_ports.values())) == len(weed_ports) == 13
    assert (stack.logs_dir / "seaweedfs.log").stat().st_size > 0
    assert endpoints.as_env()["SUNSET_SMTP_PORT"] == str(endpoints.smtp_port)


def test_s3_put_and_get(stack: DevStack) -> None:
    client = _s3(stack.endpoints.s3_endpoint, *stack.s3_credentials)
    try:
        client.create_bucket(Bucket="plain")
        client.put_object(Bucket="plain", Key="weights/shard-0", Body=b"\x00\x01weights")
        body = client.get_object(Bucket="plain", Key="weights/shard-0")["Body"].read()
        assert body == b"\x00\x01weights"
        with pytest.raises(botocore.exceptions.ClientError) as refused:
            client.delete_bucket(Bucket="plain")  # not empty: refused, as on AWS
        assert refused.value.response["Error"]["Code"] == "BucketNotEmpty"
    finally:
        client.close()


def test_object_lock_compliance_version_cannot_be_deleted(stack: DevStack) -> None:
    client = _s3(stack.endpoints.s3_endpoint)
    try:
        client.create_bucket(Bucket="locked", ObjectLockEnabledForBucket=True)
        assert client.get_bucket_versioning(Bucket="locked")["Status"] == "Enabled"
        until = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
        put = client.put_object(
            Bucket="locked",
            Key="weights.bin",
            Body=b"preserved",
            ObjectLockMode="COMPLIANCE",
            ObjectLockRetainUntilDate=until,
        )
        version = put["VersionId"]
        retention = client.get_object_retention(
            Bucket="locked", Key="weights.bin", VersionId=version
        )["Retention"]
        assert retention["Mode"] == "COMPLIANCE"
        assert retention["RetainUntilDate"] == until

        for extra in ({}, {"BypassGovernanceRetention": True}):
            with pytest.raises(botocore.exceptions.ClientError) as refused:
                client.delete_object(Bucket="locked", Key="weights.bin", VersionId=version, **extra)
            assert refused.value.response["Error"]["Code"] == "AccessDenied"
        with pytest.raises(botocore.exceptions.ClientError):
            client.put_object_retention(
                Bucket="locked",
                Key="weights.bin",
                VersionId=version,
                Retention={"Mode": "COMPLIANCE", "RetainUntilDate": until - timedelta(hours=1)},
            )
        # A delete without a version only adds a delete marker; the version survives.
        assert client.delete_object(Bucket="locked", Key="weights.bin")["DeleteMarker"]
        kept = client.get_object(Bucket="locked", Key="weights.bin", VersionId=version)
        assert kept["Body"].read() == b"preserved"
    finally:
        client.close()


def test_smtp_message_lands_in_the_maildir_with_its_envelope(stack: DevStack) -> None:
    endpoints = stack.endpoints
    before = len(read_mailbox(endpoints.maildir))
    with smtplib.SMTP(endpoints.smtp_host, endpoints.smtp_port, timeout=10) as smtp:
        smtp.send_message(
            _mail("Retirement of m-1"), to_addrs=["user@example.org", "audit@example.org"]
        )
    messages = read_mailbox(endpoints.maildir)
    assert len(messages) == before + 1
    message = messages[-1]
    assert message["Subject"] == "Retirement of m-1"
    assert message["X-Sunset-Envelope-From"] == "sunset@localhost"
    assert message.get_all("X-Sunset-Envelope-To") == ["user@example.org", "audit@example.org"]
    body = message.get_body()
    assert body is not None
    assert ".a line starting with a dot" in body.get_content()


def test_messages_server_answers(stack: DevStack) -> None:
    url = stack.endpoints.messages_base_url + "/_standin/requests"
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200


def test_s3_identities_refuse_other_keys(tmp_path: Path) -> None:
    weed = start_seaweedfs(tmp_path / "s3", identities=("AKSUNSET", "right-secret"))
    try:
        good = _s3(weed.endpoint, "AKSUNSET", "right-secret")
        good.create_bucket(Bucket="private")
        good.put_object(Bucket="private", Key="k", Body=b"v")
        good.close()
        for access_key, secret_key, code in [
            ("AKSUNSET", "wrong-secret", "SignatureDoesNotMatch"),
            ("AKOTHER", "right-secret", "InvalidAccessKeyId"),
        ]:
            bad = _s3(weed.endpoint, access_key, secret_key)
            with pytest.raises(botocore.exceptions.ClientError) as refused:
                bad.get_object(Bucket="private", Key="k")
            bad.close()
            assert refused.value.response["Error"]["Code"] == code
    finally:
        weed.stop()
    assert not _alive(weed.pid)


def test_smtp_auth_is_required_when_configured(tmp_path: Path) -> None:
    smtp = start_smtp(tmp_path / "mail", require_auth=("sunset", "pw"))
    try:
        with smtplib.SMTP(smtp.host, smtp.port, timeout=10) as client:
            with pytest.raises(smtplib.SMTPSenderRefused) as refused:
                client.send_message(_mail("no auth"))
            assert refused.value.smtp_code == 530
            with pytest.raises(smtplib.SMTPAuthenticationError):
                client.login("sunset", "wrong")
            client.login("sunset", "pw")
            client.send_message(_mail("with auth"))
    finally:
        smtp.stop()
    assert [m["Subject"] for m in read_mailbox(tmp_path / "mail")] == ["with auth"]


def test_smtp_fail_first_gives_one_transient_failure(tmp_path: Path) -> None:
    smtp = start_smtp(tmp_path / "mail", fail_first=1)
    try:
        with smtplib.SMTP(smtp.host, smtp.port, timeout=10) as client:
            with pytest.raises(smtplib.SMTPDataError) as failed:
                client.send_message(_mail("first try"))
            assert failed.value.smtp_code == 451
            client.send_message(_mail("second try"))
    finally:
        smtp.stop()
    assert [m["Subject"] for m in read_mailbox(tmp_path / "mail")] == ["second try"]


def test_stop_leaves_no_process_running(tmp_path: Path) -> None:
    stack = DevStack(tmp_path / "stack")
    stack.start()
    handles = list(stack.handles.values())
    assert handles and all(_alive(h.pid) for h in handles)
    stack.stop()
    stack.stop()  # idempotent
    assert not stack.state_file.exists()
    for handle in handles:
        assert handle.process.returncode is not None
        assert not _alive(handle.pid), handle.name
        assert not _listening(handle.port), handle.name


def test_failed_start_stops_the_services_already_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[ServiceHandle] = []
    real_start_seaweedfs = devstack.start_seaweedfs

    def recording_start_seaweedfs(*args: object, **kwargs: object) -> ServiceHandle:
        handle = real_start_seaweedfs(*args, **kwargs)  # type: ignore[arg-type]
        started.append(handle)
        return handle

    def broken_start_smtp(*args: object, **kwargs: object) -> ServiceHandle:
        raise DevStackError("smtp refused to start (on purpose)")

    monkeypatch.setattr(devstack, "start_seaweedfs", recording_start_seaweedfs)
    monkeypatch.setattr(devstack, "start_smtp", broken_start_smtp)
    stack = DevStack(tmp_path / "stack")
    with pytest.raises(DevStackError, match="on purpose"):
        stack.start()
    assert started and not _alive(started[0].pid)
    assert not stack.state_file.exists()


def test_a_failed_start_says_on_its_first_line_which_service_failed_and_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_start_smtp(*args: object, **kwargs: object) -> ServiceHandle:
        raise DevStackError("smtp (pid 1) exited with status 1 before it was ready\n--- log ---")

    monkeypatch.setattr(devstack, "start_smtp", broken_start_smtp)
    with pytest.raises(DevStackError) as failed:
        DevStack(tmp_path / "stack").start()
    first_line = str(failed.value).splitlines()[0]
    assert first_line == (
        "the local stack did not start: smtp (pid 1) exited with status 1 before it was ready"
    )


def test_a_stack_whose_owner_still_runs_is_not_replaced(tmp_path: Path) -> None:
    with DevStack(tmp_path / "stack") as running:
        with pytest.raises(DevStackError) as refused:
            DevStack(tmp_path / "stack").start()

        assert str(refused.value) == (
            f"the local stack in {running.data_dir} is in use by process {os.getpid()}, which "
            "is still running; stop it first, or use another data directory"
        )
        assert all(handle.is_running() for handle in running.handles.values())


@pytest.mark.timeout(300)
def test_a_killed_demo_leaves_nothing_running_that_blocks_the_next_demo(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUNSET_")}
    env |= {"HOME": str(tmp_path / "home"), "SUNSET_DATA_DIR": str(tmp_path / "demo")}
    demo = [sys.executable, "-m", "sunset.cli", "demo"]
    state_file = tmp_path / "demo" / "devstack" / "devstack.json"
    first = subprocess.Popen(
        demo, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 120
        while not state_file.exists() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        services = json.loads(state_file.read_text())["services"]
    finally:
        first.kill()  # SIGKILL: the demo gets no chance to stop its services
        first.wait()
    left_running = {
        name for name, s in services.items() if process_start_time(s["pid"]) == s["started"]
    }
    assert "seaweedfs" in left_running  # what made the next demo fail

    second = subprocess.run(demo, env=env, capture_output=True, text=True, timeout=240)

    assert second.returncode == 0, second.stdout + second.stderr
    said = " ".join(second.stdout.split())  # as one line, however the terminal wrapped it
    assert "Stopped the local services a killed earlier demo left running:" in said
    for name in left_running:
        assert f"{name} (pid {services[name]['pid']})" in said
    for name, service in services.items():
        assert process_start_time(service["pid"]) != service["started"], name


def test_seaweedfs_start_retries_when_a_port_was_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_weed_ports = seaweedfs._weed_ports
    calls: list[dict[str, int]] = []
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))  # bound, not listening: a connect fails at once
        taken = squatter.getsockname()[1]

        def weed_ports() -> dict[str, int]:
            ports = real_weed_ports()
            if not calls:
                ports["s3.port"] = taken
            calls.append(ports)
            return ports

        monkeypatch.setattr(seaweedfs, "_weed_ports", weed_ports)
        weed = start_seaweedfs(tmp_path / "s3")
        weed.stop()
    assert len(calls) == 2
    assert weed.port == calls[1]["s3.port"] != taken
    assert "is not available" in weed.log_path.read_text()


def test_readiness_failure_reports_the_log_tail(tmp_path: Path) -> None:
    fake_weed = tmp_path / "weed"
    fake_weed.write_text("#!/bin/sh\necho 'fake weed: cannot start'\nexit 3\n")
    fake_weed.chmod(0o755)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SUNSET_WEED_BINARY", str(fake_weed))
        with pytest.raises(DevStackError, match="fake weed: cannot start"):
            start_seaweedfs(tmp_path / "s3", timeout=10)


@pytest.mark.unit
def test_weed_binary_is_found() -> None:
    weed = devstack.find_weed()
    assert weed.name == "weed" and os.access(weed, os.X_OK)
