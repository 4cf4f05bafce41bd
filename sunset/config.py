"""Settings, read once at the edge from ``SUNSET_*`` environment variables.

Secrets are ``SecretStr``: they print as ``**********`` and reach a client only through
``get_secret_value()`` at the moment the client is built.
"""

from __future__ import annotations

from pathlib import Path

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
