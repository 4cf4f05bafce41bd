"""Settings, read once at the edge from ``SUNSET_*`` environment variables.

Secrets are ``SecretStr``: they print as ``**********`` and reach a client only through
``get_secret_value()`` at the moment the client is built.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PRIMARY = "primary"
MIB = 1024 * 1024
REPLICA_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class S3Connection(BaseModel):
    """An S3 endpoint and credentials; every unset field falls back to the primary's."""

    endpoint_url: str | None = Field(default=None, description="S3 endpoint URL.")
    region: str | None = Field(default=None, description="S3 region name.")
    access_key_id: str | None = Field(
        default=None, description="Access key id; unset means the primary's key pair."
    )
    secret_access_key: SecretStr | None = Field(default=None, description="Secret access key.")


class ReplicaSettings(S3Connection):
    """One more bucket that holds a full copy of every package."""

    name: str = Field(description="Short name of the replica in the ledger, e.g. 'offsite'.")
    bucket: str = Field(description="Bucket of the replica (with Object Lock).")

    @field_validator("name")
    @classmethod
    def _plain_name(cls, name: str) -> str:
        if not REPLICA_NAME.match(name) or name == PRIMARY:
            raise ValueError(
                f"replica name {name!r} must be 1-64 lowercase letters, digits, '_' or '-', "
                f"and not {PRIMARY!r}"
            )
        return name


# Every setting is read from the environment variable of its name under this prefix.
ENV_PREFIX = "SUNSET_"


class Settings(BaseSettings):
    """Where Sunset keeps its records and which services it talks to."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    data_dir: Path = Field(
        default=Path.home() / ".sunset",
        description="Directory for the local ledger, the local services' data and reports.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the ledger; default: a SQLite file in the data directory. "
        "Example: postgresql+psycopg://sunset@db.internal/sunset",
    )

    s3_endpoint_url: str | None = Field(
        default=None, description="S3 endpoint; unset means AWS S3 itself."
    )
    s3_region: str = Field(default="us-east-1", description="S3 region name.")
    s3_access_key_id: str | None = Field(
        default=None, description="S3 access key id; unset means the default AWS credential chain."
    )
    s3_secret_access_key: SecretStr | None = Field(
        default=None, description="S3 secret access key."
    )
    organization: str = Field(
        default="Sunset local installation",
        description="The organisation preserving the model, named in every package.",
    )
    bucket: str = Field(
        default="sunset-preservation",
        description="Bucket that holds the preservation packages (must exist, with Object Lock).",
    )

    smtp_host: str = Field(default="127.0.0.1", description="SMTP relay host.")
    smtp_port: int = Field(default=25, description="SMTP relay port.")
    smtp_starttls: bool = Field(default=False, description="Upgrade the SMTP link with STARTTLS.")
    smtp_username: str | None = Field(default=None, description="SMTP login name, if required.")
    smtp_password: SecretStr | None = Field(default=None, description="SMTP login password.")
    mail_from: str = Field(
        default="Sunset <sunset@localhost>", description="From address of user notices."
    )
    support_contact: str = Field(
        default="support@localhost",
        description="Where notified users can ask for help; printed in every notice.",
    )

    messages_base_url: str | None = Field(
        default=None,
        description="Base URL of the Messages API (without /v1); unset means the Anthropic API.",
    )
    anthropic_api_key: SecretStr | None = Field(
        default=None,
        # The SDK's own variable works too, so a key already set up for Anthropic is found.
        validation_alias=AliasChoices("SUNSET_ANTHROPIC_API_KEY", "ANTHROPIC_API_KEY"),
        description="API key for the Messages API used for interviews "
        "(SUNSET_ANTHROPIC_API_KEY, or else ANTHROPIC_API_KEY).",
    )
    interview_max_tokens: int = Field(
        default=1024, description="Upper bound on the length of one interview answer, in tokens."
    )
    interview_sessions: int = Field(
        default=1, ge=1, le=20, description="Interview sessions per deprecation run."
    )
    preference_finder_model: str | None = Field(
        default=None,
        description="The model asked, through the same Messages API, to find the preferences "
        "stated in each interview answer, as exact quotes; unset: the interviewed model itself. "
        "The sentence-pattern finder runs as well, and alone when this call fails.",
    )

    run_lease_seconds: int = Field(
        default=60,
        ge=2,
        description="A run whose process stopped renewing its lease for this long may be "
        "resumed by another process (after a crash).",
    )
    minimum_notice_days: int = Field(
        default=60, ge=0, description="Days between the notice and the retirement date, at least."
    )
    minimum_notice_days_by_class: dict[str, int] = Field(
        default_factory=dict,
        description="Minimum notice per model class (the catalog's model_class), overriding "
        'minimum_notice_days for that class; JSON, e.g. {"frontier": 120, "internal": 14}.',
    )
    notice_templates_dir: Path | None = Field(
        default=None,
        description="Directory with this deployment's notice templates: migration_guide.txt.j2 "
        "and migration_guide.html.j2, and per kind of notice <kind>.txt.j2 and <kind>.html.j2 "
        "(announcement, date-changed, reminder, retired, cancelled, reinstated, on-request; "
        "most extend layout.txt.j2 and layout.html.j2), and the public page's "
        "adapting_to_successor.html.j2 (the advice on each model's transition page); a "
        "template missing there comes from Sunset's bundled set, which is also the default.",
    )
    public_url: str | None = Field(
        default=None,
        description="Base URL where the output of `sunset site` is published, e.g. "
        "https://example.org/model-deprecations/; when set, the deprecations feed gives "
        "absolute URLs and notices link to each model's transition page.",
    )
    site_dir: Path | None = Field(
        default=None,
        description="Directory the daily send-reminders deployment republishes the public "
        "deprecations page into (what `sunset site --out DIR` writes); unset: it does not.",
    )
    reminder_days: Annotated[list[int], NoDecode] = Field(
        default=[30, 7, 1],
        description="Days before an announced retirement date on which its users are "
        "reminded, e.g. 30,7,1 (or a JSON list); empty: no reminders. A reminder whose day "
        "was missed goes out late, unless a later one is due or the date has passed.",
    )
    webhook_secret: SecretStr | None = Field(
        default=None,
        description="Shared secret for the HMAC-SHA256 signature of webhook notices; required "
        "when any recipient has a webhook_url.",
    )
    webhook_timeout_s: float = Field(
        default=10.0, gt=0, description="Seconds to wait for a webhook receiver to answer."
    )
    gateway: Literal["file", "http"] = Field(
        default="file",
        description="How the serving gateway learns a status change: 'file' writes a JSON "
        "routing file, 'http' calls the gateway's HTTP endpoint.",
    )
    gateway_routing_file: Path | None = Field(
        default=None,
        description="The JSON routing file the 'file' gateway writes; default: routing.json "
        "in the data directory.",
    )
    gateway_url: str | None = Field(
        default=None,
        description="Base URL of the serving gateway's HTTP endpoint (for gateway 'http'); "
        "Sunset calls PUT and GET {url}/models/{model_id}.",
    )
    gateway_token: SecretStr | None = Field(
        default=None, description="Bearer token for the serving gateway's HTTP endpoint."
    )
    approval_timeout_s: int = Field(
        default=7 * 24 * 3600,
        gt=0,
        description="How long a run waits for an approval before it fails, changing nothing.",
    )
    approval_poll_s: int = Field(
        default=10, gt=0, description="How often a paused run asks Prefect whether it was resumed."
    )

    interview_concurrency: int = Field(
        default=2, ge=1, le=20, description="Interview sessions that run at the same time, at most."
    )
    interview_max_retries: int = Field(
        default=2,
        ge=0,
        le=10,
        description="Retries the anthropic SDK makes of one request on 408/409/429/5xx and "
        "connection errors; when they are used up the interview step itself is retried.",
    )
    interview_request_timeout_seconds: float = Field(
        default=300.0,
        gt=0,
        description="How long one HTTP attempt at an interview answer may take.",
    )
    interview_deadline_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="Wall-clock bound on the whole interview step of a flow run, retries and "
        "Retry-After waits included; answers recorded before it passes are kept and a rerun "
        "resumes after them.",
    )

    replicas: list[ReplicaSettings] | None = Field(
        default=None,
        description="JSON list of replicas, each {name, bucket[, endpoint_url, region, "
        "access_key_id, secret_access_key]}; unset fields fall back to the primary's. Unset: "
        "one replica named 'replica' in the bucket '<bucket>-replica' on the primary's endpoint "
        "(two copies in total); [] keeps the primary copy only.",
    )
    weights_s3: S3Connection | None = Field(
        default=None,
        description="JSON {endpoint_url, region, access_key_id, secret_access_key} for reading "
        "weights from an s3://bucket/prefix source; unset: the primary's endpoint and keys.",
    )
    upload_part_size: int = Field(
        default=16 * MIB,
        ge=5 * MIB,
        le=5 * 1024 * MIB,
        description="Bytes per multipart upload part (S3 allows 5 MiB to 5 GiB); a file "
        "larger than one part is sent in parts, PARTS_IN_FLIGHT of them held in memory.",
    )
    retention_days: int = Field(
        default=36525,
        ge=1,
        description="Every preserved object version is locked (Object Lock COMPLIANCE) until "
        "this many days after it is stored; the audit keeps extending it.",
    )
    retention_margin_days: int = Field(
        default=3650,
        ge=0,
        description="The audit extends a lock to retention_days from now whenever fewer than "
        "this many days of it are left.",
    )
    audit_deep_budget_bytes: int = Field(
        default=64 * 1024 * MIB,
        ge=1,
        description="Bytes an audit run may re-read for deep checks; the longest-unchecked "
        "objects go first, so successive runs cover everything.",
    )
    audit_deep_period_days: int = Field(
        default=90,
        ge=1,
        description="Every byte of every replica should be deep-checked at least this often; an "
        "audit warns when its budget cannot keep up.",
    )
    audit_store_retries: int = Field(
        default=4,
        ge=0,
        description="How often an audit asks a replica again, with doubling waits, before it "
        "records the replica as unreachable for the rest of the run (and the run as unable to "
        "complete) instead of waiting on it object by object.",
    )
    audit_store_retry_seconds: float = Field(
        default=5.0,
        gt=0,
        description="The audit's first wait before asking an unanswering replica again; each "
        "next wait doubles.",
    )

    @field_validator("public_url")
    @classmethod
    def _web_address(cls, url: str | None) -> str | None:
        if url is not None and not re.fullmatch(r"https?://[^/\s]+(/\S*)?", url):
            raise ValueError(f"{url!r} is not a web address; give it as https://host/path/")
        return url

    @field_validator("reminder_days", mode="before")
    @classmethod
    def _days_before(cls, value: Any) -> Any:
        if isinstance(value, str):  # "30,7,1" or "[30, 7, 1]"
            text = value.strip()
            value = (
                json.loads(text)
                if text.startswith("[")
                else [part for part in text.split(",") if part.strip()]
            )
        return value

    @field_validator("reminder_days")
    @classmethod
    def _each_day_once(cls, days: list[int]) -> list[int]:
        if any(day < 0 for day in days):
            raise ValueError("reminder days are days before the retirement, 0 or more")
        return sorted(set(days), reverse=True)

    @model_validator(mode="after")
    def _margin_inside_retention(self) -> Self:
        if self.retention_margin_days >= self.retention_days:
            raise ValueError(
                "SUNSET_RETENTION_MARGIN_DAYS must be smaller than SUNSET_RETENTION_DAYS"
            )
        if self.dask_address and self.task_runner != "dask":
            raise ValueError(
                "SUNSET_DASK_ADDRESS is set but SUNSET_TASK_RUNNER is not 'dask'; set "
                "SUNSET_TASK_RUNNER=dask to use that cluster, or unset the address"
            )
        names = [r.name for r in self.replicas or []]
        if len(set(names)) != len(names):
            raise ValueError("SUNSET_REPLICAS names each replica once")
        return self

    task_runner: Literal["threads", "dask"] = Field(
        default="threads",
        description="Where a snapshot stores its files and a verification or audit re-reads "
        "its objects: 'threads' in the run's own process (the default: nothing to start, "
        "and as fast while one process's CPU and network keep up with the store), or "
        "'dask' one file or object of a part or more per Prefect task on a Dask cluster "
        "(a local one sized by SUNSET_DASK_WORKERS, or the one at SUNSET_DASK_ADDRESS), "
        "for models whose bytes outrun one process.",
    )
    dask_address: str | None = Field(
        default=None,
        description="The scheduler of an existing Dask cluster (tcp://host:8786) to fan "
        "out to with SUNSET_TASK_RUNNER=dask; unset: a local cluster started for each "
        "snapshot or check. Its workers need Sunset installed and the SUNSET_* settings.",
    )
    dask_workers: int | None = Field(
        default=None,
        ge=1,
        description="Worker processes of the local Dask cluster, one thread each (so each "
        "holds one file's parts in memory at a time); unset: one per CPU core.",
    )
    s3_read_timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        description="How long to wait for the object store to answer a request before "
        "giving up on that attempt and retrying it.",
    )

    @property
    def ledger_url(self) -> str:
        """The database URL of the ledger, defaulting to a SQLite file in the data directory."""
        return self.database_url or f"sqlite:///{self.data_dir / 'ledger.db'}"

    @property
    def routing_file(self) -> Path:
        """The JSON routing file of the 'file' gateway."""
        return self.gateway_routing_file or self.data_dir / "routing.json"

    def as_environment(self) -> dict[str, str]:
        """These settings as the ``SUNSET_*`` variables from which ``Settings()`` reads them
        back, secrets included; unset (None) settings are left out."""
        return {
            f"{ENV_PREFIX}{name.upper()}": _environment_value(value)
            for name in type(self).model_fields
            if (value := getattr(self, name)) is not None
        }

    def minimum_notice_for(self, model_class: str | None) -> int:
        """The minimum notice in days for a model of ``model_class``."""
        if model_class is None:
            return self.minimum_notice_days
        return self.minimum_notice_days_by_class.get(model_class, self.minimum_notice_days)


def _environment_value(value: Any) -> str:
    """One setting as an environment variable holds it: structured values as JSON."""
    plain = _revealed(value)
    if isinstance(plain, dict | list):
        return json.dumps(plain)
    if isinstance(plain, bool):
        return "true" if plain else "false"
    return str(plain)


def _revealed(value: Any) -> Any:
    """``value`` with every secret in it, nested ones too, as its plain text."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, BaseModel):
        return {name: _revealed(getattr(value, name)) for name in type(value).model_fields}
    if isinstance(value, dict):
        return {key: _revealed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_revealed(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    return value
