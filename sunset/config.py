"""Settings, read once at the edge from ``SUNSET_*`` environment variables.

Secrets are ``SecretStr``: they print as ``**********`` and reach a client only through
``get_secret_value()`` at the moment the client is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where Sunset keeps its records and which services it talks to."""

    model_config = SettingsConfigDict(env_prefix="SUNSET_", extra="ignore")

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
        default=None, description="API key for the Messages API used for interviews."
    )
    interview_max_tokens: int = Field(
        default=1024, description="Upper bound on the length of one interview answer, in tokens."
    )
    interview_sessions: int = Field(
        default=1, ge=1, le=20, description="Interview sessions per deprecation run."
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
        description="Directory with this deployment's notice templates (migration_guide.txt.j2, "
        "migration_guide.html.j2, notice.txt.j2, notice.html.j2); a template missing there "
        "comes from Sunset's bundled set, which is also the default.",
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

    @property
    def ledger_url(self) -> str:
        """The database URL of the ledger, defaulting to a SQLite file in the data directory."""
        return self.database_url or f"sqlite:///{self.data_dir / 'ledger.db'}"

    @property
    def routing_file(self) -> Path:
        """The JSON routing file of the 'file' gateway."""
        return self.gateway_routing_file or self.data_dir / "routing.json"

    def minimum_notice_for(self, model_class: str | None) -> int:
        """The minimum notice in days for a model of ``model_class``."""
        if model_class is None:
            return self.minimum_notice_days
        return self.minimum_notice_days_by_class.get(model_class, self.minimum_notice_days)
