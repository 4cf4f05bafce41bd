"""A deprecation request: what a release manager asks for, each value checked on its own.

``DeprecationRequest`` is the one definition of a deprecation's parameters: the CLI builds
it from its options (whose help texts are the field descriptions), the flow takes it as
its ``request`` parameter, and Prefect renders it as the deployment's form. What needs
the ledger or the files is checked by ``sunset.runs.validation``. This module stays
light (pydantic only), so that `sunset --help` shows the fields without loading the rest.
"""

from __future__ import annotations

import re
from datetime import date

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sunset.errors import InputError

MAX_APPROVERS = 2
MAX_SESSIONS = 20

MODEL_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")


class DeprecationRequest(BaseModel):
    """What a release manager asks for: one model to deprecate or retire, and how."""

    # A value wrong on its own is refused by a field validator with the sentence a user
    # sees (an InputError, which pydantic lets through unchanged); what needs the ledger
    # or the files is checked by validate_request. Plain values: it travels as a flow
    # parameter. Its validator is built when first used: every command imports it for
    # the help texts of its fields, and only `deprecate` and `demo` validate one.
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    model_id: str = Field(description="Catalog id of the model to deprecate.")
    weights: str = Field(
        description="Directory with the model's files, as served, or s3://bucket/prefix "
        "where they are kept (read with SUNSET_WEIGHTS_S3, default the primary's keys)."
    )
    recipients: str | None = Field(
        default=None,
        description="CSV of users to notify: columns email,name[,webhook_url,usage].",
    )
    recipients_from_ledger: bool = Field(
        default=False,
        description="Notify the model's users imported with `sunset users import` instead "
        "of a CSV.",
    )
    retire: bool = Field(
        default=False, description="Retire the model at the end, not just deprecate it."
    )
    retirement_date: date | None = Field(
        default=None,
        description="Announced retirement date, YYYY-MM-DD; default: minimum notice.",
    )
    protocol: str | None = Field(
        default=None, description="Interview protocol YAML; default: Sunset's standard."
    )
    sessions: int = Field(
        default=1,
        description=f"Interview sessions to run, 1 to {MAX_SESSIONS}, when the deprecation "
        "holds its interview (once); `sunset deprecate` defaults to "
        "SUNSET_INTERVIEW_SESSIONS (1).",
    )
    more_sessions: int = Field(
        default=0,
        description=f"Sessions to add, 0 to {MAX_SESSIONS}, to the interview an earlier run "
        "of this deprecation held; without them a later run does not interview again.",
    )
    notice_override_reason: str | None = Field(
        default=None,
        description="Why a notice shorter than the minimum is acceptable (recorded).",
    )
    new_snapshot_reason: str | None = Field(
        default=None,
        description="Why the weights must be preserved anew although this deprecation "
        "has a package (recorded): the new package becomes the deprecation's.",
    )
    deployment_summary: str | None = Field(
        default=None,
        description="Markdown file for the report: usage, notable uses, incidents.",
    )
    operator_analysis: str | None = Field(
        default=None,
        description="Markdown file for the report: the operators' interpretation.",
    )
    approvals: int = Field(
        default=0,
        description=f"Distinct approvers (0, 1 or {MAX_APPROVERS}) who must approve before "
        "the model is retired; the run waits for `sunset approve RUN` or the form in the "
        "Prefect UI.",
    )
    fingerprint: bool = Field(
        default=False,
        description="Run the model here from its weights directory (one .gguf file; needs "
        "pip install 'sunset[local-model]'): seal its greedy answers to fixed prompts in "
        "the package, and prove before the flip that the package alone reproduces them.",
    )
    all_digests: bool = Field(
        default=False,
        description="Deep verification re-hashes every byte with SHA-512 as well as SHA-256 "
        "and CRC64NVME (one collision-resistant digest already binds the bytes; SHA-512 "
        "costs more than both).",
    )

    @field_validator("model_id")
    @classmethod
    def _safe_model_id(cls, model_id: str) -> str:
        return check_model_id(model_id)

    @field_validator("sessions")
    @classmethod
    def _sessions_in_range(cls, sessions: int) -> int:
        if not 1 <= sessions <= MAX_SESSIONS:
            raise InputError(f"Sessions must be between 1 and {MAX_SESSIONS}, not {sessions}.")
        return sessions

    @field_validator("more_sessions")
    @classmethod
    def _more_sessions_in_range(cls, more: int) -> int:
        if not 0 <= more <= MAX_SESSIONS:
            raise InputError(f"More sessions must be between 0 and {MAX_SESSIONS}, not {more}.")
        return more

    @field_validator("approvals")
    @classmethod
    def _approvals_in_range(cls, approvals: int) -> int:
        if not 0 <= approvals <= MAX_APPROVERS:
            raise InputError(
                f"Approvals must be 0 (none), 1 or {MAX_APPROVERS} distinct approvers, "
                f"not {approvals}."
            )
        return approvals

    @field_validator("notice_override_reason", "new_snapshot_reason")
    @classmethod
    def _blank_reason_is_none(cls, reason: str | None) -> str | None:
        return (reason or "").strip() or None  # a blank reason is no reason

    @classmethod
    def describe(cls, field: str) -> str:
        """The description of one field: the CLI option's help and the form's label."""
        description = cls.model_fields[field].description
        assert description is not None
        return description

    def parameters(self) -> dict[str, object]:
        """The request as JSON values, as recorded with the run."""
        return self.model_dump(mode="json")


def check_model_id(model_id: str) -> str:
    """Refuse model ids that could escape a path or a shell."""
    if not MODEL_ID.match(model_id):
        raise InputError(
            f"Model id {model_id!r} is not valid: use 1-128 lowercase letters, digits, '.', "
            "'_' or '-', starting with a letter or digit."
        )
    return model_id


def run_name(request: DeprecationRequest) -> str:
    """What a deprecation's flow run is called in the Prefect UI: what it does, and to
    which model (announce-acme-chat-1, retire-acme-chat-1)."""
    return f"{'retire' if request.retire else 'announce'}-{request.model_id}"
