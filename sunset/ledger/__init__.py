"""The ledger: SQLModel tables by domain, the engine, and Alembic migrations.

``from sunset.ledger import X`` reaches every table and helper. A domain's module is
imported when one of its names is first used, so a command builds only the tables it
reads. Domains are cut so that the commands that only read where things stand
(`sunset status`, `sunset runs`) build none of the tables the steps work with: not the
interview's, a step's attempts, each delivery, the writes a snapshot has not settled
(building a table costs about 22 million instructions, 5-10 ms). ``load_all_tables``
registers every table on ``SQLModel.metadata``, for Alembic and for comparing the schema
with the migrations.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sunset.ledger.attempts import StepAttempt
    from sunset.ledger.audit import (
        AuditAttempt,
        AuditFinding,
        AuditRun,
        AuditState,
        FindingKind,
        FixityEvent,
    )
    from sunset.ledger.catalog import CatalogModel, ServingStatus
    from sunset.ledger.db import Ledger, open_existing_ledger, open_ledger
    from sunset.ledger.deliveries import (
        Delivery,
        DeliveryDecision,
        DeliveryDecisionKind,
        DeliveryState,
    )
    from sunset.ledger.deprecation import Deprecation, DeprecationStage
    from sunset.ledger.interview import (
        CandidateVerdict,
        ConfirmationOutcome,
        FinderOutcome,
        InterviewPreference,
        InterviewSession,
        InterviewTurn,
        PreferenceCandidate,
        PreferenceConfirmation,
        PreferenceFinderCall,
        PreferenceProvenance,
        PreferenceStatus,
        PreferenceStatusChange,
        SessionState,
    )
    from sunset.ledger.models import AttemptState, utcnow
    from sunset.ledger.notices import NoticeRecipient, RetirementDateChange
    from sunset.ledger.notify import DeliverySummary
    from sunset.ledger.preservation import (
        DigestColumns,
        DrillEvent,
        Fingerprint,
        PreservedObject,
        Snapshot,
        SnapshotFile,
        SnapshotState,
    )
    from sunset.ledger.report import Report
    from sunset.ledger.report_inputs import ReplyOutcome, ReportInput, ReportReply
    from sunset.ledger.restorations import Restoration, RestorationState
    from sunset.ledger.runs import DeprecationRun, RunState
    from sunset.ledger.serving import Approval, StatusTransition
    from sunset.ledger.store_writes import LeftoverVersion, PendingWrite
    from sunset.ledger.users import ModelUser

# Each name, by the module of the package that defines it (tests/test_ledger.py checks
# that these, the imports above and __all__ agree).
_MODULES: dict[str, tuple[str, ...]] = {
    "attempts": ("StepAttempt",),
    "audit": (
        "AuditAttempt",
        "AuditFinding",
        "AuditRun",
        "AuditState",
        "FindingKind",
        "FixityEvent",
    ),
    "catalog": ("CatalogModel", "ServingStatus"),
    "db": ("Ledger", "open_existing_ledger", "open_ledger"),
    "deliveries": ("Delivery", "DeliveryDecision", "DeliveryDecisionKind", "DeliveryState"),
    "deprecation": ("Deprecation", "DeprecationStage"),
    "interview": (
        "CandidateVerdict",
        "ConfirmationOutcome",
        "FinderOutcome",
        "InterviewPreference",
        "InterviewSession",
        "InterviewTurn",
        "PreferenceCandidate",
        "PreferenceConfirmation",
        "PreferenceFinderCall",
        "PreferenceProvenance",
        "PreferenceStatus",
        "PreferenceStatusChange",
        "SessionState",
    ),
    "models": ("AttemptState", "utcnow"),
    "notices": ("NoticeRecipient", "RetirementDateChange"),
    "notify": ("DeliverySummary",),
    "preservation": (
        "DigestColumns",
        "DrillEvent",
        "Fingerprint",
        "PreservedObject",
        "Snapshot",
        "SnapshotFile",
        "SnapshotState",
    ),
    "report": ("Report",),
    "report_inputs": ("ReplyOutcome", "ReportInput", "ReportReply"),
    "restorations": ("Restoration", "RestorationState"),
    "runs": ("DeprecationRun", "RunState"),
    "serving": ("Approval", "StatusTransition"),
    "store_writes": ("LeftoverVersion", "PendingWrite"),
    "users": ("ModelUser",),
}
_HOMES = {name: module for module, names in _MODULES.items() for name in names}
__all__ = [
    "Approval",
    "AttemptState",
    "AuditAttempt",
    "AuditFinding",
    "AuditRun",
    "AuditState",
    "CandidateVerdict",
    "CatalogModel",
    "ConfirmationOutcome",
    "Delivery",
    "DeliveryDecision",
    "DeliveryDecisionKind",
    "DeliveryState",
    "DeliverySummary",
    "Deprecation",
    "DeprecationRun",
    "DeprecationStage",
    "DigestColumns",
    "DrillEvent",
    "FinderOutcome",
    "FindingKind",
    "Fingerprint",
    "FixityEvent",
    "InterviewPreference",
    "InterviewSession",
    "InterviewTurn",
    "Ledger",
    "LeftoverVersion",
    "ModelUser",
    "NoticeRecipient",
    "PendingWrite",
    "PreferenceCandidate",
    "PreferenceConfirmation",
    "PreferenceFinderCall",
    "PreferenceProvenance",
    "PreferenceStatus",
    "PreferenceStatusChange",
    "PreservedObject",
    "ReplyOutcome",
    "Report",
    "ReportInput",
    "ReportReply",
    "Restoration",
    "RestorationState",
    "RetirementDateChange",
    "RunState",
    "ServingStatus",
    "SessionState",
    "Snapshot",
    "SnapshotFile",
    "SnapshotState",
    "StatusTransition",
    "StepAttempt",
    "open_existing_ledger",
    "open_ledger",
    "utcnow",
]


def __getattr__(name: str) -> Any:
    module = _HOMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # the next use is an ordinary attribute
    return value


def load_all_tables() -> None:
    """Register every ledger table on ``SQLModel.metadata``."""
    for module in _MODULES:
        importlib.import_module(f"{__name__}.{module}")
