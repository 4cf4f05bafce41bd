"""Step: assemble the post-deployment report and seal it beside the weights; the run that
retires the model first asks it for its reply to the report's account of it."""

from __future__ import annotations

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from sunset.interview.client import Deadline
from sunset.report.assemble import (
    SealedReport,
    record_report_input,
    report_account,
    seal_report,
)
from sunset.report.evidence import package_evidence
from sunset.report.reply import ask_for_reply
from sunset.runs.request import ValidatedRequest
from sunset.runs.steps import REPORT_STEP
from sunset.services import Services
from tasks.step import step


@step(REPORT_STEP)
def assemble_report(services: Services, run_id: str, validated: ValidatedRequest) -> SealedReport:
    """Write transcripts and report into the package, re-seal its manifests, read them back,
    and show the operators a summary, the manifest and the verification results.

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
        markdown=(
            f"# Post-deployment report of `{model_id}`, version {sealed.version}\n\n"
            f"- Sealed in the package `{sealed.package}`\n"
            f"- Object `{sealed.key}` (SHA-256 `{sealed.sha256}`)\n"
            f"- Local copies: `{sealed.local_path}` and `{sealed.html_path}`\n"
        ),
    )
    evidence = package_evidence(services.ledger, run_id)
    create_table_artifact(
        key=f"manifest-{key}",
        description="Package manifest",
        table=[{"path": f.path, "bytes": f.size, "sha256": f.sha256} for f in evidence.files],
    )
    create_table_artifact(
        key=f"verification-{key}",
        description="Verification results",
        table=[
            {
                "path": e.path,
                "bucket": e.bucket,
                "method": e.method,
                "outcome": e.outcome,
                "bytes_read": e.bytes_read,
                "checked_at": e.checked_at.isoformat(),
            }
            for e in evidence.checks
        ],
    )
