"""What deployments/ promises without a server: the bucket policy fits the code that uses it."""

from __future__ import annotations

import importlib
import inspect
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from sunset.preservation.package import package_prefix

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
POLICY = json.loads((ROOT / "deployments" / "bucket-policy.json").read_text())

# The IAM action each S3 call needs. A call missing here fails the test below, so a new
# S3 call cannot ship without someone deciding what the workers' policy must allow.
IAM_ACTION = {
    "put_object": "s3:PutObject",
    "create_multipart_upload": "s3:PutObject",
    "upload_part": "s3:PutObject",
    "complete_multipart_upload": "s3:PutObject",
    "abort_multipart_upload": "s3:AbortMultipartUpload",
    "list_multipart_uploads": "s3:ListBucketMultipartUploads",
    "list_parts": "s3:ListMultipartUploadParts",
    "get_object": "s3:GetObject",
    "head_object": "s3:GetObject",
    "head_bucket": "s3:ListBucket",
    "list_objects_v2": "s3:ListBucket",
    "list_object_versions": "s3:ListBucketVersions",
    "get_object_attributes": "s3:GetObjectAttributes",
    "get_object_retention": "s3:GetObjectRetention",
    "put_object_retention": "s3:PutObjectRetention",
    "get_object_lock_configuration": "s3:GetBucketObjectLockConfiguration",
    "get_bucket_versioning": "s3:GetBucketVersioning",
}
# Made once by the bucket's operator (with Object Lock), never by a worker.
OPERATOR_ONLY = {"create_bucket"}
PRESERVED = "arn:aws:s3:::BUCKET/" + package_prefix("*", "*").split("/", 1)[0] + "/*"


def statements(effect: str) -> list[dict[str, Any]]:
    return [s for s in POLICY["Statement"] if s["Effect"] == effect]


def actions(statement: dict[str, Any]) -> set[str]:
    action = statement["Action"]
    return {action} if isinstance(action, str) else set(action)


def test_the_bucket_policy_allows_every_s3_call_the_store_makes() -> None:
    source = (ROOT / "sunset" / "preservation" / "store.py").read_text()
    # Direct calls, and the operations behind paginators (get_paginator("list_parts")).
    calls = set(re.findall(r"\bclient\.(\w+)\(", source)) - OPERATOR_ONLY - {"get_paginator"}
    calls |= set(re.findall(r"\bget_paginator\(\"(\w+)\"\)", source))
    unmapped = calls - IAM_ACTION.keys()
    assert not unmapped, f"decide the IAM action of {unmapped} and update the bucket policy"
    allowed = set().union(*(actions(s) for s in statements("Allow")))

    assert {IAM_ACTION[call] for call in calls} <= allowed
    assert "s3:GetObjectVersion" in allowed  # the store reads given versions back


def test_the_bucket_policy_lets_nobody_delete_preserved_packages() -> None:
    allowed = set().union(*(actions(s) for s in statements("Allow")))
    assert not any("Delete" in a or "*" in a or "Bypass" in a for a in allowed)

    denied_on_packages = set().union(
        *(
            actions(s)
            for s in statements("Deny")
            if s["Principal"] == "*" and PRESERVED in s["Resource"] and "Condition" not in s
        )
    )
    assert {
        "s3:DeleteObject",
        "s3:DeleteObjectVersion",
        "s3:BypassGovernanceRetention",
    } <= denied_on_packages


def scheduled_deployments() -> list[dict[str, Any]]:
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    return [d for d in config["deployments"] if d.get("schedules")]


def test_the_reminders_are_sent_by_a_daily_deployment() -> None:
    [reminders] = [
        d for d in scheduled_deployments() if d["entrypoint"] == "flows/notices.py:send_reminders"
    ]

    [schedule] = reminders["schedules"]
    minute, hour, *every_day = schedule["cron"].split()
    assert every_day == ["*", "*", "*"] and minute.isdigit() and hour.isdigit()
    assert reminders["work_pool"]["name"] == "sunset"


def test_every_scheduled_flow_starts_without_parameters() -> None:
    # A schedule passes none: each parameter needs its default.
    for deployment in scheduled_deployments():
        path, function = deployment["entrypoint"].split(":")
        flow = getattr(
            importlib.import_module(path.removesuffix(".py").replace("/", ".")), function
        )
        required = [
            name
            for name, parameter in inspect.signature(flow.fn).parameters.items()
            if parameter.default is inspect.Parameter.empty
        ]
        assert required == [], f"{deployment['entrypoint']} needs {required}"
