"""The `sunset` command as a release manager uses it: clear sentences, honest exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from uuid import UUID, uuid4

import pytest
import typer
from sqlmodel import select
from typer.testing import CliRunner

from sunset.cli import app
from sunset.cli.edge import plain_errors
from sunset.errors import InputError
from sunset.ledger import CatalogModel, DeprecationRun, RunState, Snapshot, StepAttempt
from sunset.preservation.records import snapshot_files
from sunset.preservation.verify import verify_snapshot
from sunset_dev.example_model import EXAMPLE_MODEL_ID
from sunset_dev.processes import free_port
from tests.conftest import Site
from tests.preservation import (
    CountingReader,
    FailingReader,
    configured_store,
    snapshot,
    start_run,
    write_weights,
)

SUNSET = [sys.executable, "-m", "sunset.cli"]
RUN = uuid4()  # a flow run id


def sunset(
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 300,
    program: Sequence[str] = SUNSET,
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SUNSET_")}
    return subprocess.run(
        [*program, *args],
        env=clean | (env or {}),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def bad_input_cases(site: Site, tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    empty = tmp_path / "empty-weights"
    empty.mkdir()
    malformed = tmp_path / "malformed.csv"
    malformed.write_text(
        "email,name\nada@example.org,Ada\nnot-an-address,Bob\ncarol@example.org,\n"
    )
    weights, recipients = str(site.weights), str(site.recipients)
    return {
        "unknown model": (
            ["deprecate", "no-such-model", "--weights", weights, "--recipients", recipients],
            "not in the catalog",
        ),
        "missing weights directory": (
            [
                "deprecate",
                EXAMPLE_MODEL_ID,
                "--weights",
                str(tmp_path / "nowhere"),
                "--recipients",
                recipients,
            ],
            "does not exist",
        ),
        "empty weights directory": (
            ["deprecate", EXAMPLE_MODEL_ID, "--weights", str(empty), "--recipients", recipients],
            "holds no files",
        ),
        "malformed recipients": (
            ["deprecate", EXAMPLE_MODEL_ID, "--weights", weights, "--recipients", str(malformed)],
            "line 3: 'not-an-address' is not a valid email address; line 4: the name is empty",
        ),
        "model id with a path separator": (
            ["deprecate", "../etc", "--weights", weights, "--recipients", recipients],
            "is not valid",
        ),
        "retirement before the notice period": (
            [
                "deprecate",
                EXAMPLE_MODEL_ID,
                "--weights",
                weights,
                "--recipients",
                recipients,
                "--retire",
            ],
            "fewer than the required 60",
        ),
        "fingerprint of weights the local runtime cannot load": (
            [
                "deprecate",
                EXAMPLE_MODEL_ID,
                "--weights",
                weights,
                "--recipients",
                recipients,
                "--fingerprint",
            ],
            "holds none; the local runtime loads a directory with exactly one .gguf file",
        ),
    }


CASES = [
    "unknown model",
    "missing weights directory",
    "empty weights directory",
    "malformed recipients",
    "model id with a path separator",
    "retirement before the notice period",
    "fingerprint of weights the local runtime cannot load",
]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_refused_with_one_sentence_and_changes_nothing(
    site: Site, tmp_path: Path, case: str
) -> None:
    args, expected = bad_input_cases(site, tmp_path)[case]

    result = sunset(*args, env=site.env)

    assert result.returncode == 1
    assert expected in result.stderr
    assert result.stderr.startswith("Error: ")
    assert "Traceback" not in result.stderr + result.stdout
    with site.ledger.session() as db:
        assert db.exec(select(DeprecationRun)).first() is None
        assert db.exec(select(StepAttempt)).first() is None
        model = db.get(CatalogModel, EXAMPLE_MODEL_ID)
        assert model is not None and model.serving_status == "active"
        assert model.deprecation_announced_on is None
    assert site.object_keys() == []
    assert site.mailbox() == []


USAGE_MISTAKES = {
    "unknown option": (["deprecate", "--bogus"], "No such option: --bogus"),
    "missing argument": (["deprecate"], "Missing argument 'model'."),
    "bad date": (
        ["deprecate", EXAMPLE_MODEL_ID, "--weights", "w", "--retirement-date", "next tuesday"],
        "Invalid value for '--retirement-date': 'next tuesday' is not a date",
    ),
    "unknown command": (["retire-everything"], "No such command 'retire-everything'."),
    "an audit run's option without --run": (
        ["audit", "--all-digests"],
        "--all-digests and --deep-budget-bytes shape an audit run: add --run.",
    ),
}


@pytest.mark.unit
@pytest.mark.parametrize("case", USAGE_MISTAKES)
def test_a_usage_mistake_is_one_error_line_and_exit_code_2(case: str) -> None:
    args, expected = USAGE_MISTAKES[case]

    result = CliRunner().invoke(app, args, prog_name="sunset", terminal_width=80)

    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    error, *hint = result.stderr.splitlines()
    assert error.startswith("Error: ") and expected in error, result.stderr
    command = "sunset" if case == "unknown command" else f"sunset {args[0]}"
    assert hint == [f"Try '{command} --help'."], result.stderr
    assert not set("╭╮╰╯│─") & set(result.stderr), result.stderr


@pytest.mark.unit
@pytest.mark.parametrize("command", ["model-server", "demo", "deprecate", "drill"])
def test_help_shows_the_extra_to_install(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"], terminal_width=200)

    assert result.exit_code == 0, result.output
    assert "pip install 'sunset[local-model]'" in result.output


@pytest.mark.unit
def test_an_error_prints_brackets_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(typer.Exit), plain_errors():
        raise InputError("install them with: pip install 'sunset[local-model]'")

    assert capsys.readouterr().err == (
        "Error: install them with: pip install 'sunset[local-model]'\n"
    )


def test_every_command_explains_itself() -> None:
    top = sunset("--help")
    assert top.returncode == 0, top.stderr
    assert "Usage:" in top.stdout
    commands = (
        ["demo"],
        ["deprecate"],
        ["status"],
        ["runs"],
        ["register"],
        ["users"],
        ["users", "import"],
        ["users", "list"],
        ["approve"],
        ["reject"],
        ["reinstate"],
        ["ops"],
        ["ops", "up"],
        ["ops", "setup"],
        ["drill"],
        ["site"],
        ["audit"],
        ["model-server"],
    )
    for command in commands:  # in-process: starting Python once per command is slow here
        result = CliRunner().invoke(app, [*command, "--help"])
        assert result.exit_code == 0, result.output
        assert "Usage:" in result.output


def test_demo_runs_the_whole_deprecation_and_a_second_run_changes_nothing(tmp_path: Path) -> None:
    env = {"SUNSET_DATA_DIR": str(tmp_path / "demo")}

    first = sunset("demo", env=env)

    assert first.returncode == 0, first.stderr[-3000:]
    assert "Deprecation of sunset-example-1 complete" in first.stdout
    assert "s3://sunset-preservation/models/sunset-example-1/" in first.stdout
    assert "retired" in first.stdout
    reports = list((tmp_path / "demo" / "reports").rglob("report-v1.md"))
    assert len(reports) == 1 and "Post-deployment report" in reports[0].read_text()
    mails = list((tmp_path / "demo" / "devstack" / "mailbox" / "new").iterdir())
    assert len(mails) == 3

    second = sunset("demo", env=env)

    assert second.returncode == 0, second.stderr[-3000:]
    assert "nothing to do" in second.stdout
    assert "retired" in second.stdout
    assert len(list((tmp_path / "demo" / "devstack" / "mailbox" / "new").iterdir())) == 3
    status = sunset("status", EXAMPLE_MODEL_ID, env=env)
    assert status.returncode == 0 and "active -> retired" in status.stdout
    runs = sunset("runs", env=env)
    assert runs.returncode == 0 and "completed" in runs.stdout


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def test_users_import_refuses_an_invalid_file_whole_and_deprecate_can_use_the_ledger(
    site: Site, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("email,name\nada@example.org,Ada\nbob@,Bob\ncarol@example.org,Carol,x\n")

    refused = sunset("users", "import", EXAMPLE_MODEL_ID, str(bad), env=site.env)
    imported = sunset("users", "import", EXAMPLE_MODEL_ID, str(site.recipients), env=site.env)
    listed = sunset("users", "list", EXAMPLE_MODEL_ID, env=site.env)
    both = sunset(
        "deprecate",
        EXAMPLE_MODEL_ID,
        "--weights",
        str(site.weights),
        "--recipients",
        str(site.recipients),
        "--recipients-from-ledger",
        env=site.env,
    )

    assert refused.returncode == 1
    assert "line 3: 'bob@' is not a valid email address" in refused.stderr
    assert "line 4: more fields than columns" in refused.stderr
    assert imported.returncode == 0 and "3 added, 0 updated, 0 removed" in imported.stdout
    assert listed.returncode == 0 and "grace@" in listed.stdout
    assert both.returncode == 1 and "exactly one way" in both.stderr


# What a command that runs no flow must not load: Prefect and the layers above the core,
# the model runtime and the harness; then what makes `sunset --help` slow to answer.
ORCHESTRATION = ("prefect", "flows", "tasks", "deployments", "torch", "transformers", "sunset_dev")
SERVICE_CLIENTS = ("anthropic", "boto3", "botocore", "httpx", "jinja2", "alembic")


def modules_loaded_by(*args: str, env: dict[str, str] | None = None) -> set[str]:
    """The modules that `sunset ARGS`, run in a fresh interpreter, has loaded by the time
    it ends (it must end with exit code 0)."""
    script = (
        "import sys\n"
        "from sunset.cli import app\n"
        "try:\n"
        "    app(sys.argv[1:], prog_name='sunset')\n"
        "except SystemExit as ended:\n"
        "    assert not ended.code, ended.code\n"
        "print('LOADED', *sorted(sys.modules))\n"
    )
    ran = sunset(*args, env=env, program=[sys.executable, "-c", script])
    assert ran.returncode == 0, ran.stderr
    return set(ran.stdout.rpartition("LOADED ")[2].split())


def packages_loaded_by(*args: str, env: dict[str, str] | None = None) -> set[str]:
    """The top-level packages of ``modules_loaded_by``."""
    return {name.split(".")[0] for name in modules_loaded_by(*args, env=env)}


def test_help_loads_no_prefect_no_ledger_and_no_service_client() -> None:
    loaded = packages_loaded_by("--help")

    assert "typer" in loaded  # the walk sees what was loaded
    assert loaded & {*ORCHESTRATION, *SERVICE_CLIENTS, "sqlmodel", "sqlalchemy"} == set()


def test_status_and_runs_load_the_ledger_but_no_service_client(tmp_path: Path) -> None:
    env = {"SUNSET_DATA_DIR": str(tmp_path)}
    registered = sunset("register", "bench-chat-1", "--name", "Bench Chat 1", env=env)
    assert registered.returncode == 0, registered.stderr

    tables_read = {
        ("status", "bench-chat-1"): {"catalog", "deprecation", "preservation", "audit"},
        ("status",): {"catalog"},
        ("runs",): {"runs", "attempts"},
    }
    # The tables the steps work with, which no command that only reads where things stand
    # needs (each costs about 22 million instructions to build).
    working_tables = {
        "interview",
        "users",
        "notices",
        "deliveries",
        "store_writes",
        "restorations",
        "report_inputs",
    }
    for command, tables in tables_read.items():
        modules = modules_loaded_by(*command, env=env)
        loaded = {name.split(".")[0] for name in modules}

        assert "sqlmodel" in loaded, command  # it did read the ledger
        # A ledger already at the newest migration is read without loading Alembic.
        assert loaded & {*ORCHESTRATION, *SERVICE_CLIENTS} == set(), command
        # Only the tables it reads are built: never the steps' working tables.
        built = {name.rpartition(".")[2] for name in modules if name.startswith("sunset.ledger.")}
        assert tables <= built, command
        assert built & working_tables == set(), command
    assert "preservation" not in built  # `runs`: its runs and their steps


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def test_status_shows_a_package_as_preserved_only_once_it_is_verified(
    site: Site, tmp_path: Path
) -> None:
    weights = str(write_weights(tmp_path / "weights"))
    store = configured_store()
    run_id = start_run(site.ledger)
    wide = site.env | {"COLUMNS": "250"}  # one line a fact, for the assertions

    with pytest.raises(OSError):
        snapshot(site.ledger, store, weights, run_id, FailingReader("tokenizer/tokenizer.json"))
    with site.ledger.session() as db:
        run = db.get(DeprecationRun, run_id)
        assert run is not None
        run.state = RunState.FAILED
        db.add(run)
        package = db.exec(select(Snapshot).where(Snapshot.run_id == run_id)).one()
    stored_so_far = len(snapshot_files(site.ledger, package.id))
    partial = sunset("status", EXAMPLE_MODEL_ID, env=wide)

    snapshot(site.ledger, store, weights, run_id, CountingReader())
    unverified = sunset("status", EXAMPLE_MODEL_ID, env=wide)

    verify_snapshot(
        site.ledger, store, snapshot_id=package.id, run_id=None, organization="Example Lab"
    )
    verified = sunset("status", EXAMPLE_MODEL_ID, env=wide)

    assert 0 < stored_so_far < 4
    assert partial.returncode == 0, partial.stderr
    assert "Preserved package" not in partial.stdout
    assert "Package (incomplete)" in partial.stdout
    assert f"{stored_so_far} of 4 files stored, not verified (run {run_id[:8]} failed)" in (
        partial.stdout
    )
    assert "Manifest digest" not in partial.stdout
    assert unverified.returncode == 0, unverified.stderr
    assert "Preserved package" not in unverified.stdout
    assert f"{package.prefix} stored, not verified" in unverified.stdout
    assert "Manifest digest" in unverified.stdout
    assert verified.returncode == 0, verified.stderr
    assert "Preserved package" in verified.stdout
    assert f"s3://{site.store.bucket}/{package.prefix} verified" in verified.stdout


@pytest.mark.parametrize("user_set", [False, True], ids=["default", "user-set"])
def test_prefect_keeps_its_home_under_the_data_directory_unless_the_user_sets_it(
    tmp_path: Path, user_set: bool
) -> None:
    home, data, chosen = tmp_path / "home", tmp_path / "data", tmp_path / "chosen"
    home.mkdir()  # the data directory is not there yet: a ledger elsewhere made none
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SUNSET_", "PREFECT_"))}
    env |= {"HOME": str(home), "SUNSET_DATA_DIR": str(data)}
    if user_set:
        env["PREFECT_HOME"] = str(chosen)
    # What a local run does before it imports the flow, and with it Prefect.
    started = (
        "from sunset.cli.local_runs import prepare_prefect; from sunset.config import Settings; "
        "prepare_prefect(Settings()); from prefect.settings import PREFECT_HOME; "
        "print(PREFECT_HOME.value())"
    )

    result = subprocess.run(
        [sys.executable, "-c", started], env=env, capture_output=True, text=True, timeout=120
    )

    assert result.returncode == 0, result.stderr
    expected = chosen if user_set else data / "prefect"
    assert Path(result.stdout.strip()) == expected
    assert expected.is_dir()
    assert not (home / ".prefect").exists()
    if user_set:
        assert not (data / "prefect").exists()


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_deciding_writes_no_prefect_home_outside_the_data_directory_and_no_ledger(
    tmp_path: Path, decision: str
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SUNSET_", "PREFECT_"))}
    # Only PREFECT_API_URL, as the README says; nothing answers there.
    env |= {"HOME": str(home), "PREFECT_API_URL": f"http://127.0.0.1:{free_port()}/api"}

    decided = subprocess.run(
        [*SUNSET, decision, "abcdef12", "--reason", "a test"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert decided.returncode == 1
    assert decided.stderr.startswith(
        f"Error: No Prefect server answers at {env['PREFECT_API_URL']}"
    )
    assert not (home / ".prefect").exists()
    assert (home / ".sunset" / "prefect").is_dir()  # the default data directory's
    assert list(tmp_path.rglob("ledger.db*")) == []


@pytest.mark.unit
@pytest.mark.parametrize(
    ("final", "exit_code", "last_line"),
    [
        (
            {"type": "COMPLETED", "name": "Completed"},
            0,
            "retire-m-1 ended Completed. `sunset status m-1` shows the package, the report "
            "and the serving status.",
        ),
        (
            {
                "type": "COMPLETED",
                "name": "Rejected",
                "message": "Rejected by bob; the serving status did not change.",
            },
            0,
            "retire-m-1 ended Rejected: Rejected by bob; the serving status did not change.",
        ),
        (
            {
                "type": "COMPLETED",
                "name": "Nothing to do",
                "message": "m-1 is already retired; there is nothing to do.",
            },
            0,
            "retire-m-1 ended Nothing to do: m-1 is already retired; there is nothing to do.",
        ),
        (
            {
                "type": "FAILED",
                "name": "Failed",
                "message": "Flow run encountered an exception: SunsetError: no good copy",
            },
            1,
            "Error: retire-m-1 ended Failed: Flow run encountered an exception: SunsetError: "
            "no good copy",
        ),
    ],
    ids=["completed", "rejected", "nothing-to-do", "failed"],
)
def test_wait_without_a_terminal_prints_each_change_and_the_named_final_state(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    final: dict[str, str],
    exit_code: int,
    last_line: str,
) -> None:
    from prefect.client.schemas.objects import FlowRun, State

    import deployments.ops

    def flow_run(state: dict[str, str]) -> FlowRun:
        return FlowRun(
            id=RUN, flow_id=RUN, name="retire-m-1", state=State(**state), state_name=state["name"]
        )

    # What the server shows while it runs: each poll, the run and its finished steps.
    polls = [
        (flow_run({"type": "PENDING", "name": "Pending"}), []),
        (flow_run({"type": "RUNNING", "name": "Running"}), []),
        (flow_run({"type": "RUNNING", "name": "Running"}), []),
        (flow_run({"type": "RUNNING", "name": "Running"}), ["preflight"]),
        (flow_run({"type": "PAUSED", "name": "Paused"}), ["preflight", "assemble_report"]),
        (flow_run({"type": "PAUSED", "name": "Paused"}), ["preflight", "assemble_report"]),
        (flow_run(final), ["preflight", "assemble_report"]),
    ]

    def follow(flow_run_id: UUID, on_progress: Callable[[FlowRun, list[str]], None]) -> FlowRun:
        for polled, done in polls:
            on_progress(polled, done)
        return polls[-1][0]

    monkeypatch.setattr(deployments.ops, "start_deprecation", lambda *_, **__: polls[0][0])
    monkeypatch.setattr(deployments.ops, "follow", follow)
    monkeypatch.setattr(deployments.ops, "flow_run_url", lambda i: f"http://ui/runs/{i}")
    monkeypatch.setenv("SUNSET_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))
    argv = ["deprecate", "m-1", "--weights", str(tmp_path), "--retire", "--via-deployment"]

    result = CliRunner().invoke(app, [*argv, "--wait"], terminal_width=250)

    assert result.exit_code == exit_code, result.output
    assert (result.stdout + result.stderr).splitlines() == [
        f"Started retire-m-1 on deprecate-model/manual: http://ui/runs/{RUN}",
        "retire-m-1: Pending",
        "retire-m-1: Running",
        "retire-m-1: Running; done: preflight",
        "retire-m-1: Paused; done: preflight, assemble_report; waiting for approval: "
        f"sunset approve {RUN} --reason TEXT (or sunset reject)",
        f"retire-m-1: {final['name']}; done: preflight, assemble_report",
        last_line,
    ]


@pytest.mark.unit
def test_names_and_reasons_in_the_model_record_print_as_written(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime

    from sunset.catalog import ModelRecord
    from sunset.cli import output
    from sunset.ledger import Approval, ServingStatus

    monkeypatch.setattr(output, "console", output.Console(width=200))
    approval = Approval(
        run_id="r" * 32,
        target_status=ServingStatus.RETIRED,
        approver="[bold]mallory[/]",
        decision="approve",
        reason="looks [red]fine[/]",
        counted=False,
        decided_at=datetime(2026, 11, 30, tzinfo=UTC),
    )
    record = ModelRecord(
        model=CatalogModel(id="m-1", display_name="M"),
        package=None,
        report=None,
        fingerprint=None,
        drill=None,
        deliveries=[],
        approvals=[approval],
        transitions=[],
    )

    output.show_model(record)

    shown = capsys.readouterr().out
    assert "[bold]mallory[/]: approve retired" in shown
    assert "looks [red]fine[/] [not counted: same approver twice]" in shown
