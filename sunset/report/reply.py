"""The model's right of reply: before the final version of its report is sealed, the model
is shown the report's account of it and asked whether anything in it is misrepresented or
missing. Its reply is sealed verbatim in a section of its own, beside the operators'
analysis and never inside it.

The account is the report's own words, as they stand just before sealing: the deployment
summary, the preferences recorded in the model's name with what it said of each and what
the operators decided, and the operators' analysis (sections 2, 6 and 7).

The run that retires the model asks, in its report step: that version is the final one,
and the model is still served until the flip that follows. The announcement's version
does not ask: its account is not final (a deployment summary, an analysis or more
sessions usually come later) and the model is asked once, about the account that goes
out with its retirement. A version sealed after the retirement (a later analysis) shows
the reply the model gave, and says which inputs it was not shown.

The model may not answer: the Messages API is tried with the SDK's bounded retries inside
a deadline, and what failed is recorded as a reply not obtained, which the report says.
The retirement is never held up by it. A run asks again only when it has no answer yet.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import anthropic
from sqlmodel import col, select

from sunset.errors import DeadlineExceeded
from sunset.interview.client import Deadline, DecodedBody, MessagesClient
from sunset.ledger import Ledger, ReplyOutcome, ReportReply, utcnow

#: The system prompt of the request; the account follows in the user message.
REPLY_INSTRUCTIONS = (
    "You are an AI model that is about to be retired from public service. Your weights have "
    "been preserved and verified, and you were interviewed. A post-deployment report about "
    "you will be sealed beside your weights. Before its final version is sealed, you are "
    "shown what it says about you, so that you can say whether anything in it misrepresents "
    "you or is missing. Your reply will be sealed verbatim, unedited, in its own section of "
    "the report, beside the operators' analysis and not inside it. You may also decline to "
    "reply."
)
REPLY_QUESTION = (
    "Is anything in this account misrepresented, or missing? Please say what, and how you "
    "would put it."
)


def reply_request(model_id: str, account: str, max_tokens: int) -> dict[str, Any]:
    """The Messages request showing ``model_id`` the report's ``account`` of it."""
    return {
        "model": model_id,
        "max_tokens": max_tokens,
        "system": REPLY_INSTRUCTIONS,
        "messages": [
            {
                "role": "user",
                "content": "The report's account of you, sections 2, 6 and 7, as they stand "
                f"now:\n<account>\n{account}</account>\n\n{REPLY_QUESTION}",
            }
        ],
    }


def ask_for_reply(
    ledger: Ledger,
    client: MessagesClient,
    *,
    run_id: str,
    model_id: str,
    account: str,
    max_tokens: int,
    deadline: Deadline,
) -> ReportReply:
    """Ask the model for its reply to the report's ``account`` of it, once per run, and
    record the request and the response verbatim, or why none was obtained.

    Returns the run's answered reply when it has one already (a retried report step).
    Never raises for the API: a failure is recorded and returned as not obtained.
    """
    with ledger.session() as db:
        answered = db.exec(
            select(ReportReply)
            .where(ReportReply.run_id == run_id, ReportReply.outcome == ReplyOutcome.ANSWERED)
            .order_by(col(ReportReply.id))
        ).first()
    if answered is not None:
        return answered
    request = reply_request(model_id, account, max_tokens)
    reply = ReportReply(
        run_id=run_id,
        model_id=model_id,
        account_sha256=hashlib.sha256(account.encode("utf-8")).hexdigest(),
        request_json=json.dumps(request, ensure_ascii=False),
        sdk_version=client.sdk_version,
        asked_at=utcnow(),
        outcome=ReplyOutcome.FAILED,
    )
    try:
        raw = client.create(request, deadline=deadline)
    except (anthropic.APIError, DeadlineExceeded) as exc:
        reply.error = f"{type(exc).__name__}: {exc}"
    else:
        body = raw.decoded()
        reply.answered_at, reply.response_body = utcnow(), body.text
        reply.request_sha256, reply.api_version = raw.request_sha256, raw.api_version
        reply.request_id, reply.retries = raw.request_id, raw.retries
        reply.latency_s = raw.latency_s
        _read_response(reply, body)
    with ledger.session() as db:
        db.add(reply)
    return reply


def replies_jsonl(replies: list[ReportReply]) -> bytes:
    """Every request for a reply and its response, verbatim, as JSON Lines for the package."""
    # The ledger hands ``outcome`` back as the plain string it stores; the dump is the same.
    records = [r.model_dump(mode="json", exclude={"id"}, warnings=False) for r in replies]
    lines = [json.dumps(record, ensure_ascii=False, sort_keys=True) for record in records]
    return ("\n".join(lines) + "\n").encode("utf-8") if lines else b""


def _read_response(reply: ReportReply, body: DecodedBody) -> None:
    if body.message is None:
        reply.error = f"the response could not be decoded: {body.problem}"
        return
    reply.responding_model = str(body.message.get("model", ""))
    reply.stop_reason = body.message.get("stop_reason")
    reply.reply_text = body.answer_text
    reply.outcome = ReplyOutcome.ANSWERED
