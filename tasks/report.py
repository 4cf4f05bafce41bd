"""Step: assemble the post-deployment report and seal it beside the weights; the run that
retires the model first asks it for its reply to the report's account of it."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from sunset.interview.client import Deadline
from sunset.report.assemble import (
    SealedReport,
    record_report_input,
    report_account,
    seal_report,
)
from sunset.report.evidence import package_evidence, verification_summary
from sunset.report.reply import ask_for_reply
from sunset.runs.steps import FINAL_REPORT_STEP, REPORT_STEP
from sunset.runs.validation import ValidatedRequest
from sunset.services import Services
from tasks.step import step


@step(REPORT_STEP)
def assemble_report(services: Services, run_id: str, validated: ValidatedRequest) -> SealedReport:
    """Write transcripts and report into the package, re-seal its manifests, read them back,
    and show the operators the report, the manifest and the verification results.

    The run that retires the model seals the final version: before that, while the model is
    still served, it shows the model the report's account of it and asks whether anything
    is misrepresented or missing. The reply (or why none was obtained, after the SDK's
    bounded retries) is sealed in its own section; it never holds up the retirement.
    """
    settings = services.settings
    for kind, text in validated.report_inputs.items():
        record_report_input(
            services.ledger, run_id=run_id, kind=kind, text=text, supplied_by="release manager"
        )
    if validated.request.retire:
        reply = ask_for_reply(
            services.ledger,
            services.messages,
            run_id=run_id,
            model_id=validated.model.id,
            account=report_account(services.ledger, run_id),
            max_tokens=settings.interview_max_tokens,
            deadline=Deadline.after(settings.interview_deadline_seconds),
        )
        get_run_logger().info(
            "The model's reply to its report: %s%s",
            reply.outcome,
            f" ({reply.error})" if reply.error else "",
        )
    return _seal(services, run_id, validated)


@step(FINAL_REPORT_STEP)
def seal_final_report(services: Services, run_id: str, validated: ValidatedRequest) -> SealedReport:
    """Seal the retirement's last report version once its users were told: the version
    sealed before the flip cannot list the notices that went out after it."""
    return _seal(services, run_id, validated)


def _seal(services: Services, run_id: str, validated: ValidatedRequest) -> SealedReport:
    settings = services.settings
    sealed = seal_report(
        services.ledger,
        services.store,
        run_id=run_id,
        protocol=validated.protocol,
        organization=settings.organization,
        reports_dir=settings.data_dir / "reports",
    )
    _show_artifacts(services, run_id, validated.model.id, sealed)
    get_run_logger().info("Report v%d sealed at %s", sealed.version, sealed.key)
    return sealed


def _show_artifacts(services: Services, run_id: str, model_id: str, sealed: SealedReport) -> None:
    key = "".join(c if c.isalnum() else "-" for c in model_id.lower())
    create_markdown_artifact(
        key=f"report-{key}",
        description="Post-deployment report",
        # The report itself, so that it reads in the UI; where it is sealed, first.
        markdown=(
            f"Version {sealed.version}, sealed in the package `{sealed.package}` as "
            f"`{sealed.key}` (SHA-256 `{sealed.sha256}`); local copies `{sealed.local_path}` "
            f"and `{sealed.html_path}`.\n\n---\n\n"
            + Path(sealed.local_path).read_text(encoding="utf-8")
        ),
    )
    evidence = package_evidence(services.ledger, run_id)
    create_table_artifact(
        key=f"manifest-{key}",
        description="Package manifest",
        table=[{"path": f.path, "bytes": f.size, "sha256": f.sha256} for f in evidence.files],
    )
    # A summary per replica; the check-by-check detail stays in the ledger's
    # fixity_events and in the report's own verification section.
    create_table_artifact(
        key=f"verification-{key}",
        description="Verification of the package in this run, per replica",
        table=[
            {
                "replica": replica.replica,
                "bucket": replica.bucket,
                "objects": replica.objects,
                "fast checks": replica.fast_checks,
                "deep checks": replica.deep_checks,
                "bytes re-read": replica.bytes_read,
                "result": replica.verdict,
                "not ok": "; ".join(replica.not_ok),
            }
            for replica in verification_summary(evidence.checks)
        ],
    )
