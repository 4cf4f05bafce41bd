"""Which interview sessions a run holds: a deprecation has one interview.

The first run of a deprecation that interviews holds the sessions asked for. A later run
(the retirement) joins that interview: it resumes the sessions left open, adds the ones
the release manager asked for (``more_sessions``, numbered after the last), and holds
none when the interview is complete and nothing more was asked.
"""

from __future__ import annotations

from dataclasses import dataclass

from sunset.interview.runner import InterviewSummary
from sunset.ledger import InterviewSession, Ledger, SessionState
from sunset.runs.deprecation import fellow_run_ids, interview_of


@dataclass(frozen=True)
class InterviewPlan:
    """The session indices a run holds, and the interview as earlier runs left it."""

    sessions: list[int]
    earlier: list[InterviewSession]

    def skipped_summary(self) -> InterviewSummary:
        """What the step records when it holds no session: the interview is complete."""
        held_by = sorted({s.run_id[:8] for s in self.earlier})
        last = self.earlier[-1]
        return InterviewSummary(
            sessions=0,
            turns_asked=0,
            turns_replayed=0,
            flagged_turns=0,
            preferences_found=0,
            protocol=f"{last.protocol_name} {last.protocol_version}",
            protocol_sha256=last.protocol_sha256,
            skipped=(
                f"The interview of this deprecation is complete ({len(self.earlier)} "
                f"session(s), held by run {', '.join(held_by)}), so the model was not "
                "interviewed again; --more-sessions N adds sessions to it."
            ),
        )


def plan_interview(
    ledger: Ledger, run_id: str, *, sessions: int, more_sessions: int
) -> InterviewPlan:
    """The sessions run ``run_id`` holds of its deprecation's interview.

    Args:
        ledger: The record of the interview so far.
        run_id: The run about to interview.
        sessions: How many sessions the interview holds when this run is the first to
            interview.
        more_sessions: How many sessions this run adds to an interview an earlier run held
            (a resumed run counts those it already added).
    """
    with ledger.session() as db:
        interview = interview_of(db, fellow_run_ids(db, run_id))
    earlier = [s for s in interview if s.run_id != run_id]
    if not earlier:
        return InterviewPlan(list(range(1, sessions + 1)), earlier)
    left_open = [s.session_index for s in earlier if s.state != SessionState.COMPLETED]
    added = [s.session_index for s in interview if s.run_id == run_id]
    last = max(s.session_index for s in interview)
    added += range(last + 1, last + 1 + more_sessions - len(added))
    return InterviewPlan(sorted(left_open + added), earlier)
