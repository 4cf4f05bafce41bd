"""resurrection_drill: prove that a model's preserved package alone brings it back."""

from __future__ import annotations

from prefect import flow

from sunset.config import Settings
from sunset.preservation.drill import DrillSummary
from sunset.services import connect
from tasks.drill import drill_package


@flow(name="resurrection-drill", flow_run_name="drill-{model_id}")
def resurrection_drill(model_id: str, snapshot_id: str | None = None) -> DrillSummary:
    """Restore a model's package from the bucket into a fresh directory, verify it against
    its manifest, load the model from the restored files only and replay its fingerprint.

    Args:
        model_id: The model whose package is drilled.
        snapshot_id: The package to drill; default: the model's latest fingerprinted one.
    """
    services = connect(Settings())
    return drill_package(services, model_id, snapshot_id)
