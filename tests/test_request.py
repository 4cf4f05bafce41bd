"""A deprecation's parameters are defined once: the CLI, the flow and the deployment agree."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from prefect.utilities.callables import parameter_schema_from_entrypoint
from pydantic import TypeAdapter

from flows.deprecate import deprecate_model
from sunset.cli import app
from sunset.errors import InputError
from sunset.runs.request import DeprecationRequest, run_name

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
ENTRYPOINT = "flows/deprecate.py:deprecate_model"
# `sunset deprecate` names four fields its own way; three options steer the CLI alone.
CLI_NAMES = {"model": "model_id", "notice_override": "notice_override_reason"}
CLI_NAMES |= {"analysis": "operator_analysis", "new_snapshot": "new_snapshot_reason"}
CLI_ONLY = {"via_deployment", "wait", "deployment"}


def deprecate_options() -> dict[str, Any]:
    command = typer.main.get_command(app)
    assert isinstance(command, typer.core.TyperGroup)
    return {p.name: p for p in command.commands["deprecate"].params if p.name}


def deprecate_deployments() -> list[dict[str, Any]]:
    project = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    found = [d for d in project["deployments"] if d["entrypoint"] == ENTRYPOINT]
    assert found, f"prefect.yaml has no deployment of {ENTRYPOINT}"
    return found


def test_every_request_field_is_a_deprecate_option_with_the_field_description_as_help() -> None:
    options = deprecate_options()
    fields = {CLI_NAMES.get(name, name): option for name, option in options.items()}

    assert fields.keys() - CLI_ONLY == DeprecationRequest.model_fields.keys()
    for name, option in fields.items():
        if name not in CLI_ONLY:
            assert option.help == DeprecationRequest.describe(name), name


def test_the_flow_takes_the_request_model_as_its_parameter() -> None:
    schema = deprecate_model.parameters

    assert list(schema.properties) == ["request", "requested_by"]
    assert schema.required == ["request"]
    assert schema.properties["request"]["$ref"] == "#/definitions/DeprecationRequest"
    assert schema.definitions["DeprecationRequest"] == DeprecationRequest.model_json_schema()


def test_the_deployment_registers_the_flow_schema_and_its_defaults_fit_the_model() -> None:
    for deployment in deprecate_deployments():
        # What `prefect deploy` sends as the deployment's form is what the flow takes.
        assert parameter_schema_from_entrypoint(ENTRYPOINT) == deprecate_model.parameters
        defaults = deployment.get("parameters") or {}
        assert defaults.keys() <= deprecate_model.parameters.properties.keys()
        request = defaults.get("request") or {}
        assert request.keys() <= DeprecationRequest.model_fields.keys()
        for name, value in request.items():
            TypeAdapter(DeprecationRequest.model_fields[name].annotation).validate_python(value)


def test_a_request_travels_as_json_and_comes_back_equal() -> None:
    request = DeprecationRequest(
        model_id="acme-chat-1",
        weights="/models/acme-chat-1",
        recipients="/srv/users.csv",
        retirement_date=date(2027, 3, 1),
        notice_override_reason="a security fix",
    )

    parameters = request.parameters()

    assert parameters["retirement_date"] == "2027-03-01"
    assert DeprecationRequest.model_validate(parameters) == request


@pytest.mark.parametrize(
    ("fields", "sentence"),
    [
        ({"model_id": "../../etc/passwd"}, "Model id '../../etc/passwd' is not valid: use 1-128"),
        ({"sessions": 0}, "Sessions must be between 1 and 20, not 0."),
        ({"sessions": 21}, "Sessions must be between 1 and 20, not 21."),
        ({"approvals": 3}, "Approvals must be 0 (none), 1 or 2 distinct approvers, not 3."),
        ({"more_sessions": -1}, "More sessions must be between 0 and 20, not -1."),
    ],
)
def test_a_field_wrong_on_its_own_is_refused_with_the_users_sentence(
    fields: dict[str, Any], sentence: str
) -> None:
    with pytest.raises(InputError) as refused:
        DeprecationRequest(**({"model_id": "m", "weights": "/w"} | fields))

    assert str(refused.value).startswith(sentence)


@pytest.mark.parametrize("field", ["notice_override_reason", "new_snapshot_reason"])
def test_a_blank_reason_is_no_reason(field: str) -> None:
    request = DeprecationRequest(model_id="m", weights="/w", **{field: " \t\n"})
    reason = DeprecationRequest(model_id="m", weights="/w", **{field: " why "})

    assert getattr(request, field) is None
    assert getattr(reason, field) == "why"


def test_a_run_is_named_for_what_it_does_whether_started_here_or_by_a_deployment() -> None:
    announce = DeprecationRequest(model_id="acme-chat-1", weights="/w")
    retire = announce.model_copy(update={"retire": True})

    assert (run_name(announce), run_name(retire)) == ("announce-acme-chat-1", "retire-acme-chat-1")
    # A deployment hands the flow the request as JSON; the name is the same.
    as_json = DeprecationRequest.model_validate(retire.parameters())
    assert run_name(as_json) == "retire-acme-chat-1"
