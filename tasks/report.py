"""Step: assemble the post-deployment report and seal it beside the weights."""

from __future__ import annotations

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact

from sunset.report.assemble import SealedReport, seal_report
from sunset.runs import REPORT_STEP, ValidatedRequest
from sunset.services import Services
from tasks.step import step


@step(REPORT_STEP)
def assemble_report(services: Services, run_id: str, validated: ValidatedRequest) -> SealedReport:
    """Write transcripts and report into the package, re-seal its manifests, read them back."""
    settings = services.settings
    sealed = seal_report(
        services.ledger,
        services.store,
        run_id=run_id,
        protocol=validated.protocol,
        organization=settings.organization,
        reports_dir=settings.data_dir / "reports",
    )
    create_markdown_artifact(
        key=f"report-{validated.model.id.replace('.', '-').replace('_', '-')}",
        markdown=f"Report v{sealed.version} for `{validated.model.id}` sealed in "
        f"`{sealed.package}` (SHA-256 `{sealed.sha256}`); local copy `{sealed.local_path}`.",
        description="Post-deployment report",
    )
    get_run_logger().info("Report v%d sealed at %s", sealed.version, sealed.key)
    return sealed
