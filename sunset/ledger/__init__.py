"""The ledger: SQLModel tables, the engine, and Alembic migrations."""

from sunset.ledger.db import Ledger, open_ledger
from sunset.ledger.models import (
    AttemptState,
    CatalogModel,
    Delivery,
    DeprecationRun,
    FixityEvent,
    InterviewSession,
    InterviewTurn,
    Report,
    ReportInput,
    RunState,
    ServingStatus,
    Snapshot,
    SnapshotFile,
    StatusTransition,
    StepAttempt,
    utcnow,
)

__all__ = [
    "AttemptState",
    "CatalogModel",
    "Delivery",
    "DeprecationRun",
    "FixityEvent",
    "InterviewSession",
    "InterviewTurn",
    "Ledger",
    "Report",
    "ReportInput",
    "RunState",
    "ServingStatus",
    "Snapshot",
    "SnapshotFile",
    "StatusTransition",
    "StepAttempt",
    "open_ledger",
    "utcnow",
]
