"""The bad input catalogue: every case refused in one sentence, with nothing changed.

Cases come through the command line (``sunset ...`` in its own process), through the
flow's parameters (as a deployment or the UI would pass them) and through the files they
name. After each, the ledger, the bucket and the mailbox are exactly as before.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from sunset.errors import SunsetError
from sunset.ledger import CatalogModel, DeprecationRun, ServingStatus
from sunset.notify.channels import EmailChannel
from sunset.notify.email import SmtpMailer, SmtpRelay
from sunset.notify.message import Notice, NoticeKind, NoticeTemplates
from sunset.notify.notices import notify_recipients
from sunset.notify.recipients import load_recipients
from sunset.preservation.store import ObjectStore
from sunset.runs.deprecation import attach_run
from sunset_dev.devstack import DevStack, free_port, read_mailbox, start_smtp
from sunset_dev.example_model import (
    EXAMPLE_MODEL_ID,
    write_example_recipients,
)
from tests.conftest import Site
from tests.reliability.conftest import CANARY_S3_KEY_ID, LockedStore, Runner, make_home
from tests.reliability.tally import TALLY
from tests.reliability.world import World, object_versions
from tests.reliability.zygote import Zygote

RETIRED_MODEL = "sunset-retired-0"
SOON = (date.today() + timedelta(days=10)).isoformat()


@dataclass
class Bench:
    """One ledger, bucket and mail domain shared by every case, with files to point at."""

    env: dict[str, str]
    world: World
    locked: LockedStore
    zygote: Zygote
    files: Path
    weights: Path
    recipients: Path

    def file(self, name: str, data: bytes) -> str:
        path = self.files / name
        path.write_bytes(data)
        return str(path)

    def weights_dir(self, name: str, build: Callable[[Path], object]) -> str:
        directory = self.files / name
        directory.mkdir()
        (directory / "config.json").write_text("{}\n")
        build(directory)
        return str(directory)

    def fingerprint(self) -> dict[str, Any]:
        return self.world.fingerprint() | {"locked": object_versions(self.locked.store)}


@pytest.fixture(scope="module")
def bench(
    stack: DevStack,
    zygote: Zygote,
    locked_store: LockedStore,
    example_weights: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Bench]:
    directory = tmp_path_factory.mktemp("bad-input")
    home = make_home(stack, directory, "bad")
    with home.world.ledger.session() as db:
        db.add(
            CatalogModel(
                id=RETIRED_MODEL, display_name="Retired 0", serving_status=ServingStatus.RETIRED
            )
        )
    recipients = write_example_recipients(directory / "users.csv")
    recipients.write_text(recipients.read_text().replace("example.org", home.world.domain))
    files = directory / "files"
    files.mkdir()
    yield Bench(home.env, home.world, locked_store, zygote, files, example_weights, recipients)
    home.world.ledger.dispose()


@dataclass(frozen=True)
class Case:
    """One bad input: how to give it, and words its one-sentence refusal must contain."""

    expected: str
    argv: Callable[[Bench], list[str]] | None = None
    flow: Callable[[Bench], dict[str, Any]] | None = None
    env: Callable[[Bench], dict[str, str]] = lambda bench: {}
    exit_code: int = 1
    # Refused before Prefect starts: the whole of stderr is the one sentence. Otherwise
    # Prefect's own log of the failed flow run comes first, and the sentence is last.
    before_flow: bool = True


def deprecate(
    model: str = EXAMPLE_MODEL_ID, *extra: str, **files: str
) -> Callable[[Bench], list[str]]:
    def argv(bench: Bench) -> list[str]:
        return [
            "deprecate",
            model,
            "--weights",
            files.get("weights", str(bench.weights)),
            "--recipients",
            files.get("recipients", str(bench.recipients)),
            *extra,
        ]

    return argv


def deprecate_with(**made: Callable[[Bench], str]) -> Callable[[Bench], list[str]]:
    """``sunset deprecate`` whose named options point at files made for the case."""

    def argv(bench: Bench) -> list[str]:
        options = {name: make(bench) for name, make in made.items()}
        extra = [
            item
            for name, value in options.items()
            if name not in ("weights", "recipients")
            for item in (f"--{name.replace('_', '-')}", value)
        ]
        files = {k: v for k, v in options.items() if k in ("weights", "recipients")}
        return deprecate(EXAMPLE_MODEL_ID, *extra, **files)(bench)

    return argv


def flow(**fields: Any) -> Callable[[Bench], dict[str, Any]]:
    """The flow's parameters as a deployment or the UI passes them: the request as JSON."""

    def kwargs(bench: Bench) -> dict[str, Any]:
        values = {"model_id": EXAMPLE_MODEL_ID, "weights": str(bench.weights)}
        values |= {"recipients": str(bench.recipients)}
        request = values | {k: v(bench) if callable(v) else v for k, v in fields.items()}
        return {"request": request}

    return kwargs


def recipients_file(name: str, text: bytes) -> Callable[[Bench], str]:
    return lambda bench: bench.file(name, text)


def protocol_file(name: str, text: str) -> Callable[[Bench], str]:
    return lambda bench: bench.file(name, text.encode())


def fifo(directory: Path) -> None:
    os.mkfifo(directory / "pipe")


def non_utf8_name(directory: Path) -> None:
    Path(os.fsdecode(bytes(directory) + b"/shard-\xff\xfe.bin")).write_bytes(b"x")


def escaping_link(directory: Path) -> None:
    (directory / "shard.bin").symlink_to("/etc/hostname")


def escaping_dir_link(directory: Path) -> None:
    (directory / "more").symlink_to(directory.parent)


def symlink_loop(directory: Path) -> None:
    (directory / "shard.bin").symlink_to("shard.bin")


def dangling_link(directory: Path) -> None:
    (directory / "shard.bin").symlink_to("moved-away.bin")


def only_empty_dirs(directory: Path) -> None:
    (directory / "config.json").unlink()
    (directory / "a" / "b").mkdir(parents=True)


VALID_PROTOCOL_HEAD = "name: p\nversion: 1\ndescription: d\nframing: f\n"
DUPLICATE_IDS = VALID_PROTOCOL_HEAD + (
    "sections:\n  - id: s\n    title: S\n    questions:\n      - id: q1\n        text: a\n"
    "      - id: q1\n        text: b\nclosing: {id: c, text: c}\n"
)
NO_CLOSING = VALID_PROTOCOL_HEAD + (
    "sections:\n  - id: s\n    title: S\n    questions:\n      - id: q1\n        text: a\n"
)

CASES: dict[str, Case] = {
    # ------------------------------------------------------------------ model ids
    "model id with path separators": Case("is not valid", deprecate("../../etc/passwd")),
    "model id with shell metacharacters": Case("is not valid", deprecate("x;touch PWNED")),
    "model id with command substitution": Case("is not valid", deprecate("$(touch PWNED)")),
    "model id with a newline": Case("is not valid", deprecate("sunset-example-1\nrm -rf")),
    "model id not in the catalog": Case("is not in the catalog", deprecate("no-such-model")),
    "model already retired": Case(
        "retired cannot become deprecated", deprecate(RETIRED_MODEL), before_flow=False
    ),
    "register: impossible release date": Case(
        "is not a date",
        lambda b: ["register", "new-1", "--name", "X", "--released", "2025-02-30"],
        exit_code=2,
    ),
    "register: unknown replacement": Case(
        "is not in the catalog",
        lambda b: ["register", "new-1", "--name", "X", "--replacement", "no-such-model"],
    ),
    "register: model already there": Case(
        "already in the catalog", lambda b: ["register", EXAMPLE_MODEL_ID, "--name", "X"]
    ),
    # ------------------------------------------------------------------ dates and numbers
    "retirement date in another format": Case(
        "is not a date",
        deprecate(EXAMPLE_MODEL_ID, "--retirement-date", "31/12/2027"),
        exit_code=2,
    ),
    "retirement date that does not exist": Case(
        "is not a date",
        deprecate(EXAMPLE_MODEL_ID, "--retirement-date", "2027-02-30"),
        exit_code=2,
    ),
    "retirement before the notice period": Case(
        "fewer than the required 60", deprecate(EXAMPLE_MODEL_ID, "--retirement-date", SOON)
    ),
    "retirement in the past": Case(
        "is before today", deprecate(EXAMPLE_MODEL_ID, "--retirement-date", "2020-01-01")
    ),
    "retirement in the past with an override": Case(
        "users cannot be told of a retirement that is already past",
        deprecate(EXAMPLE_MODEL_ID, "--retirement-date", "0001-01-01", "--notice-override", "x"),
    ),
    "retire now without a reason": Case(
        "fewer than the required 60", deprecate(EXAMPLE_MODEL_ID, "--retire")
    ),
    "retire now with a blank reason": Case(
        "fewer than the required 60",
        deprecate(EXAMPLE_MODEL_ID, "--retire", "--notice-override", "   "),
    ),
    "zero sessions": Case("between 1 and 20", deprecate(EXAMPLE_MODEL_ID, "--sessions", "0")),
    "sessions not a number": Case(
        "Invalid value for '--sessions'",
        deprecate(EXAMPLE_MODEL_ID, "--sessions", "many"),
        exit_code=2,
    ),
    # ------------------------------------------------------------------ protocol files
    "protocol that is not YAML": Case(
        "is not valid YAML at line", deprecate_with(protocol=protocol_file("p1.yaml", "name: [x\n"))
    ),
    "protocol asking one question id twice": Case(
        "uses the question id 'q1' twice",
        deprecate_with(protocol=protocol_file("p2.yaml", DUPLICATE_IDS)),
    ),
    "protocol without a closing question": Case(
        "at field 'closing'", deprecate_with(protocol=protocol_file("p3.yaml", NO_CLOSING))
    ),
    "protocol file missing": Case(
        "cannot be read", deprecate_with(protocol=lambda b: str(b.files / "nowhere.yaml"))
    ),
    # ------------------------------------------------------------------ recipients
    "recipient name smuggling a Bcc header": Case(
        "control characters",
        deprecate_with(
            recipients=recipients_file(
                "r1.csv", b'email,name\nada@x.example,"Ada\r\nBcc: evil@attacker.example"\n'
            )
        ),
    ),
    "recipient address smuggling a second address": Case(
        "is not a valid email address",
        deprecate_with(
            recipients=recipients_file(
                "r2.csv", b'email,name\n"ada@x.example>, <evil@attacker.example",Ada\n'
            )
        ),
    ),
    "recipients file not UTF-8": Case(
        "is not a UTF-8 text file",
        deprecate_with(
            recipients=recipients_file(
                "r4.csv", "email,name\nada@x.example,Adà\n".encode("latin-1")
            )
        ),
    ),
    "recipient listed twice in other case": Case(
        "is listed twice",
        deprecate_with(
            recipients=recipients_file("r5.csv", b"email,name\nada@x.example,A\nADA@x.example,B\n")
        ),
    ),
    "recipients with a field over the csv module's limit": Case(
        "is not valid CSV at line 2: a field is longer than 131072 characters",
        deprecate_with(
            recipients=recipients_file("r9.csv", b"email,name\nada@x.example," + b"A" * 200_000)
        ),
    ),
    "recipients without a name column": Case(
        "lacks the column(s) name",
        deprecate_with(recipients=recipients_file("r6.csv", b"email\nada@x.example\n")),
    ),
    # ------------------------------------------------------------------ weights directories
    "weights with a symlink out of the directory": Case(
        "outside the weights directory",
        deprecate_with(weights=lambda b: b.weights_dir("w1", escaping_link)),
    ),
    "weights with a directory symlink out": Case(
        "outside the weights directory",
        deprecate_with(weights=lambda b: b.weights_dir("w2", escaping_dir_link)),
    ),
    "weights with a symlink loop": Case(
        "is a symlink loop", deprecate_with(weights=lambda b: b.weights_dir("w8", symlink_loop))
    ),
    "weights with a dangling symlink": Case(
        "which does not exist", deprecate_with(weights=lambda b: b.weights_dir("w9", dangling_link))
    ),
    "weights with a FIFO": Case(
        "not a regular file", deprecate_with(weights=lambda b: b.weights_dir("w3", fifo))
    ),
    "weights with a name that is not UTF-8": Case(
        "is not valid UTF-8", deprecate_with(weights=lambda b: b.weights_dir("w4", non_utf8_name))
    ),
    "weights path is a file": Case(
        "is not a directory", deprecate_with(weights=lambda b: b.file("w5", b"weights"))
    ),
    "weights directory missing": Case(
        "does not exist", deprecate_with(weights=lambda b: str(b.files / "w6"))
    ),
    "weights holding only empty directories": Case(
        "holds no files", deprecate_with(weights=lambda b: b.weights_dir("w7", only_empty_dirs))
    ),
    # ------------------------------------------------------------------ report inputs
    "deployment summary not UTF-8": Case(
        "is not UTF-8 text",
        deprecate_with(deployment_summary=lambda b: b.file("s1.md", b"Usage: \xff\xfe high\n")),
    ),
    "deployment summary over 1 MB": Case(
        "is over 1 MB",
        deprecate_with(deployment_summary=lambda b: b.file("s2.md", b"x" * 1_000_001)),
    ),
    # ------------------------------------------------------------------ settings and services
    "negative minimum notice setting": Case(
        "The setting SUNSET_MINIMUM_NOTICE_DAYS is invalid",
        deprecate(),
        env=lambda b: {"SUNSET_MINIMUM_NOTICE_DAYS": "-3"},
    ),
    "wrong S3 credentials": Case(
        "was refused; check SUNSET_S3_ACCESS_KEY_ID",
        deprecate(),
        env=lambda b: {
            "SUNSET_S3_ENDPOINT_URL": b.locked.endpoint,
            "SUNSET_BUCKET": b.locked.store.bucket,
            "SUNSET_S3_ACCESS_KEY_ID": CANARY_S3_KEY_ID,
            "SUNSET_S3_SECRET_ACCESS_KEY": "not-the-secret",
        },
    ),
    "missing bucket": Case(
        "does not exist", deprecate(), env=lambda b: {"SUNSET_BUCKET": "no-such-bucket-here"}
    ),
    "unreachable object store": Case(
        "could not be reached for bucket",
        deprecate(),
        env=lambda b: {"SUNSET_S3_ENDPOINT_URL": f"http://127.0.0.1:{closed_port()}"},
    ),
    "no Messages API key": Case(
        "set SUNSET_ANTHROPIC_API_KEY",
        deprecate(),
        env=lambda b: {"SUNSET_ANTHROPIC_API_KEY": "", "ANTHROPIC_API_KEY": ""},
    ),
    "wrong Messages API key": Case(
        "refused the API key (401 invalid x-api-key)",
        deprecate(),
        env=lambda b: {"SUNSET_ANTHROPIC_API_KEY": "sk-not-the-key"},
    ),
    "unreachable Messages API": Case(
        "check SUNSET_MESSAGES_BASE_URL",
        deprecate(),
        env=lambda b: {"SUNSET_MESSAGES_BASE_URL": f"http://127.0.0.1:{closed_port()}"},
    ),
    "a webhook recipient and no signing secret": Case(
        "set SUNSET_WEBHOOK_SECRET",
        deprecate_with(
            recipients=recipients_file(
                "hooks.csv", b"email,name,webhook_url\nada@x.example,Ada,https://hooks.example/a\n"
            )
        ),
    ),
    "unreachable SMTP relay": Case(
        "check SUNSET_SMTP_HOST and SUNSET_SMTP_PORT",
        deprecate(),
        env=lambda b: {"SUNSET_SMTP_PORT": str(closed_port())},
    ),
    "flow: wrong Messages API key": Case(
        "refused the API key",
        flow=flow(),
        env=lambda b: {"SUNSET_ANTHROPIC_API_KEY": "sk-not-the-key"},
    ),
    "unreachable ledger database": Case(
        "Connection refused",
        deprecate(),
        env=lambda b: {
            "SUNSET_DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/x"
        },
    ),
    # ------------------------------------------------------------------ flow parameters
    "flow: model id with path separators": Case(
        "is not valid", flow=flow(model_id="../../etc/passwd")
    ),
    "flow: model id with a NUL byte": Case("is not valid", flow=flow(model_id="sunset\x00example")),
    "flow: sessions not a number": Case("sessions", flow=flow(sessions="many")),
    "flow: retirement date that does not exist": Case(
        "retirement_date", flow=flow(retirement_date="2027-02-30")
    ),
    "flow: retire with a whitespace reason": Case(
        "fewer than the required 60", flow=flow(retire=True, notice_override_reason="\t \n")
    ),
    "flow: recipients path is a directory": Case(
        "is not a UTF-8 text file", flow=flow(recipients=lambda b: str(b.files))
    ),
    "flow: weights path with a NUL byte": Case("does not exist", flow=flow(weights="/tmp/w\x00")),
    "flow: protocol file of binary bytes": Case(
        "is not valid YAML", flow=flow(protocol=lambda b: b.file("p4.yaml", b"\x00\x01\x02\x03"))
    ),
    "flow: recipient name over 200 characters": Case(
        "longer than 200 characters",
        flow=flow(
            recipients=lambda b: b.file(
                "r7.csv", b"email,name\nada@x.example," + b"A" * 201 + b"\n"
            )
        ),
    ),
    "flow: operators' analysis file missing": Case(
        "cannot be read", flow=flow(operator_analysis=lambda b: str(b.files / "nowhere.md"))
    ),
}


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on."""
    port = free_port()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0
    return port


@pytest.mark.usefixtures("prefect_server")
@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_refused_in_one_sentence_and_changes_nothing(
    bench: Bench, name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = CASES[name]
    before = bench.fingerprint()

    if case.argv is not None:
        child = bench.zygote.spawn(
            "bad-input",
            argv=case.argv(bench),
            env=bench.zygote.env | bench.env | case.env(bench),
            cwd=tmp_path,
        )
        assert child.wait(60) == case.exit_code, child.output()[-3000:]
        stderr = child.stderr.read_text().strip()
        message = stderr.splitlines()[-1] if stderr else ""
        if case.exit_code == 1:
            assert message.startswith("Error: ") and message.endswith("."), stderr[-3000:]
            assert "\n" not in stderr or not case.before_flow, stderr
        else:  # a usage mistake: one Error line, then where to find help
            error, hint = stderr.splitlines()
            assert error.startswith("Error: ") and hint.startswith("Try '"), stderr
        assert case.expected in stderr, stderr[-3000:]
    else:
        assert case.flow is not None
        for key, value in (bench.env | case.env(bench)).items():
            monkeypatch.setenv(key, value)
        from flows.deprecate import deprecate_model

        with pytest.raises(Exception) as refused:
            deprecate_model(**case.flow(bench))
        message = str(refused.value)
        assert case.expected in message
        if isinstance(refused.value, SunsetError):
            assert "\n" not in message and message.endswith("."), message

    TALLY.bad_inputs += 1
    after = bench.fingerprint()
    TALLY.lost(sum(1 for part in before if before[part] != after[part]))
    assert after == before
    assert list(tmp_path.iterdir()) == []  # nothing was run by a shell in the working directory


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def test_a_bucket_without_object_lock_is_refused(site: Site, runner: Runner, world: World) -> None:
    bucket = f"nolock-{uuid.uuid4().hex[:12]}"
    site.store.client.create_bucket(Bucket=bucket)
    plain = ObjectStore(site.store.client, bucket)
    TALLY.bad_inputs += 1
    before = world.fingerprint() | {"plain": object_versions(plain)}

    child = runner.run(
        "no-object-lock",
        "deprecate",
        EXAMPLE_MODEL_ID,
        "--weights",
        str(site.weights),
        "--recipients",
        str(site.recipients),
        SUNSET_BUCKET=bucket,
    )

    assert child.returncode() == 1, child.output()[-2000:]
    assert "Object Lock" in child.stderr.read_text().strip().splitlines()[-1]
    assert world.fingerprint() | {"plain": object_versions(plain)} == before


INERT_NAMES = [
    "Ada, Eve <eve@attacker.example>",
    'Grace" <eve@attacker.example>, "x',
    "<script>alert('notice')</script>",
    '=HYPERLINK("http://attacker.example","click")',
]


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def test_names_that_try_to_add_recipients_or_markup_reach_only_their_owner_inertly(
    site: Site, tmp_path: Path
) -> None:
    # Names are free text: these are accepted (no control characters), so they must be
    # harmless where they land, in the mail headers, the envelope and the HTML part.
    domain = f"{site.marker}.example"
    quoted = [name.replace('"', '""') for name in INERT_NAMES]  # CSV quoting
    lines = [f'u{n}@{domain},"{name}"' for n, name in enumerate(quoted)]
    csv_file = tmp_path / "names.csv"
    csv_file.write_text("email,name\n" + "\n".join(lines) + "\n", encoding="utf-8")
    recipients = load_recipients(csv_file)
    assert [r.name for r in recipients] == INERT_NAMES
    with site.ledger.session() as db:
        model = db.get(CatalogModel, EXAMPLE_MODEL_ID)
        run = DeprecationRun(model_id=EXAMPLE_MODEL_ID)
        db.add(run)
    assert model is not None
    deprecation = attach_run(site.ledger, run.id, date(2026, 6, 1))
    server = start_smtp(tmp_path / "mailbox")
    try:
        notify_recipients(
            site.ledger,
            [
                EmailChannel(
                    SmtpMailer(SmtpRelay("127.0.0.1", server.port)),
                    NoticeTemplates(),
                    "Sunset <sunset@localhost>",
                )
            ],
            run_id=run.id,
            notice=Notice(
                NoticeKind.ANNOUNCEMENT,
                deprecation.id,
                model,
                None,
                date(2026, 1, 1),
                date(2026, 6, 1),
                "support@localhost",
            ),
            recipients=recipients,
        )
    finally:
        server.stop()
    TALLY.bad_inputs += len(INERT_NAMES)

    mails = read_mailbox(tmp_path / "mailbox")
    envelopes = sorted(rcpt for m in mails for rcpt in m.get_all("X-Sunset-Envelope-To") or [])
    assert envelopes == sorted(r.email for r in recipients)  # nobody else was written to
    for message in mails:
        html = message.get_body(("html",)).get_content()
        assert "<script>" not in html
        assert str(message["To"]).endswith(f"@{domain}>")
