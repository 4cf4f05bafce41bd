"""The ledger: SQLModel tables by domain, the engine, and Alembic migrations.

Importing the package registers every table on ``SQLModel.metadata``.
"""

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
