"""The ledger: SQLModel tables by domain, the engine, and Alembic migrations.

``from sunset.ledger import X`` reaches every table and helper. A domain's module is
imported when one of its names is first used, so a command builds only the tables it
reads: `sunset status` does not build the interview's (building a table costs about
3 ms, a sixth of that command's time). ``load_all_tables`` registers every table on
``SQLModel.metadata``, for Alembic and for comparing the schema with the migrations.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sunset.ledger.audit import (
        AuditAttempt,
        AuditFinding,
        AuditRun,
        AuditState,
        FindingKind,
        FixityEvent,
    )
    from sunset.ledger.catalog import CatalogModel, ModelUser, ServingStatus
    from sunset.ledger.db import Ledger, open_existing_ledger, open_ledger
    from sunset.ledger.deprecation import (
        Deprecation,
        DeprecationStage,
        NoticeRecipient,
        RetirementDateChange,
    )
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
    from sunset.ledger.models import utcnow
    from sunset.ledger.notify import (
        Delivery,
        DeliveryDecision,
        DeliveryDecisionKind,
        DeliveryState,
        DeliverySummary,
    )
    from sunset.ledger.preservation import (
        DigestColumns,
        DrillEvent,
        Fingerprint,
        LeftoverVersion,
        PendingWrite,
        PreservedObject,
        Restoration,
        RestorationState,
        Snapshot,
        SnapshotFile,
        SnapshotState,
    )
    from sunset.ledger.report import ReplyOutcome, Report, ReportInput, ReportReply
    from sunset.ledger.runs import AttemptState, DeprecationRun, RunState, StepAttempt
    from sunset.ledger.serving import Approval, StatusTransition

# Each name, by the module of the package that defines it (tests/test_ledger.py checks
# that these, the imports above and __all__ agree).
_MODULES: dict[str, tuple[str, ...]] = {
    "audit": (
        "AuditAttempt",
        "AuditFinding",
        "AuditRun",
        "AuditState",
        "FindingKind",
        "FixityEvent",
    ),
    "catalog": ("CatalogModel", "ModelUser", "ServingStatus"),
    "db": ("Ledger", "open_existing_ledger", "open_ledger"),
    "deprecation": ("Deprecation", "DeprecationStage", "NoticeRecipient", "RetirementDateChange"),
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
    "models": ("utcnow",),
    "notify": (
        "Delivery",
        "DeliveryDecision",
        "DeliveryDecisionKind",
        "DeliveryState",
        "DeliverySummary",
    ),
    "preservation": (
        "DigestColumns",
        "DrillEvent",
        "Fingerprint",
        "LeftoverVersion",
        "PendingWrite",
        "PreservedObject",
        "Restoration",
        "RestorationState",
        "Snapshot",
        "SnapshotFile",
        "SnapshotState",
    ),
    "report": ("ReplyOutcome", "Report", "ReportInput", "ReportReply"),
    "runs": ("AttemptState", "DeprecationRun", "RunState", "StepAttempt"),
    "serving": ("Approval", "StatusTransition"),
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
