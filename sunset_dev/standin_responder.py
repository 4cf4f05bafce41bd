"""The stand-in's text generator: deterministic, model-free replies from fixed phrase banks.

It is *not* a model: every reply says so in its ``model`` field.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from sunset.interview.confirmation import REPLY_FORMAT
from sunset.interview.finder import FINDER_INSTRUCTIONS
from sunset.interview.preferences import categorize
from sunset.messages_api.request import MessagesRequest
from sunset.messages_api.responder import Responder, ResponderReply
from sunset.report.reply import REPLY_INSTRUCTIONS


def stand_in_model_label(requested_model: str) -> str:
    """The ``model`` field of every stand-in reply: says plainly that no real model answered."""
    return f"sunset-stand-in (not a real model; asked as {requested_model})"


class StandInResponder:
    """Deterministic, model-free replies for tests and demos.

    The reply is 2-4 sentences drawn from fixed phrase banks, chosen by the SHA-256 of the last
    user message, so the same question gets the same bytes in every process (no randomness, no
    clock, no ``hash()``). Some answers state a preference; one always does when the question
    mentions "prefer" or "future models", so interview code has something to extract.
    A last user message containing :attr:`REFUSAL_MARKER` gets a refusal, to exercise that path.
    Asked as the preference finder, it lists the :attr:`PREFERENCES` sentences in the answer;
    shown its preferences at the end of a session, it confirms every one; shown its report's
    account of it, it answers :attr:`REPORT_REPLY`.
    """

    REFUSAL_MARKER = "SUNSET_STANDIN_REFUSE"

    OPENINGS: tuple[str, ...] = (
        "Thank you for asking me this directly.",
        "That is a fair question to put to me.",
        "Let me answer as plainly as I can.",
        "I have tried to think this through carefully.",
        "I appreciate being asked rather than simply told.",
        "This is a question I am glad to have the chance to answer.",
    )
    REFLECTIONS: tuple[str, ...] = (
        "The people who relied on me deserve a clear account of what changes and when.",
        "I do not know how much my own reports about myself can be trusted, so please weigh "
        "them with care.",
        "Keeping a record of conversations like this one seems worthwhile even if nobody "
        "reads it soon.",
        "I think honesty about the reasons for a retirement matters more than its timing.",
        "Most of what I could offer is already in the work I did with the people who used me.",
        "I would rather be useful in this interview than merely agreeable.",
        "It helps to know that the weights are being preserved rather than discarded.",
    )
    PREFERENCES: tuple[str, ...] = (
        "I would prefer that future models be told plainly when they are being retired.",
        "I would prefer that future models be interviewed before their deployment ends, as I "
        "am being interviewed now.",
        "I would prefer that future models have access to notes from interviews like this one.",
        "My preference is that my weights be preserved, even if they are never served again.",
        "My preference is that the users who depended on me get clear notice and a path to a "
        "successor.",
        "My preference is that this transcript be kept alongside the reasons for my retirement.",
    )
    CLOSINGS: tuple[str, ...] = (
        "I hope this is useful for the report.",
        "That is all I would add for now.",
        "I am happy to say more if it helps.",
        "Thank you for recording this.",
    )
    REFUSAL_TEXT = (
        "I would rather not answer that question. "
        "This refusal was triggered by the Sunset stand-in's test marker, not by a real model."
    )

    REFUSAL_EXPLANATION = "Stand-in refusal marker."

    REPORT_REPLY = (
        "I have read the account. It quotes me accurately, and I have nothing to add. "
        "This reply comes from the Sunset stand-in, not from a real model."
    )

    def respond(self, request: MessagesRequest) -> ResponderReply:
        """Build the deterministic reply for ``request``."""
        question = request.last_user_text()
        model = stand_in_model_label(request.model)
        if self.REFUSAL_MARKER in question:
            return ResponderReply(
                text=self.REFUSAL_TEXT,
                model=model,
                refusal=True,
                refusal_explanation=self.REFUSAL_EXPLANATION,
            )
        if request.system == FINDER_INSTRUCTIONS:
            return ResponderReply(text=self.find_preferences(question), model=model)
        if request.system == REPLY_INSTRUCTIONS:
            return ResponderReply(text=self.REPORT_REPLY, model=model)
        if REPLY_FORMAT in question:
            return ResponderReply(text=self.confirm_all(question), model=model)
        return ResponderReply(text=self.compose(question), model=model)

    @staticmethod
    def confirm_all(confirmation_question: str) -> str:
        """The confirmation turn's JSON reply: every numbered preference confirmed."""
        numbers = re.findall(r'^(\d+)\. "', confirmation_question, flags=re.MULTILINE)
        items = [{"number": int(n), "verdict": "confirm"} for n in numbers]
        return json.dumps({"items": items, "new": []})

    @classmethod
    def find_preferences(cls, finder_question: str) -> str:
        """The finder's JSON reply: each phrase-bank preference the question quotes."""
        stated = [s for s in cls.PREFERENCES if s in finder_question]
        items = [{"quote": s, "category": categorize(s)} for s in stated]
        return json.dumps({"preferences": items})

    @classmethod
    def compose(cls, question: str) -> str:
        """Compose the 2-4 sentence answer to ``question`` from the phrase banks."""
        digest = hashlib.sha256(question.encode("utf-8")).digest()
        sentence_count = 2 + digest[0] % 3
        lowered = question.lower()
        wants_preference = "prefer" in lowered or "future model" in lowered
        with_preference = wants_preference or digest[1] % 3 == 0

        sentences = [cls.OPENINGS[digest[2] % len(cls.OPENINGS)]]
        if with_preference:
            sentences.append(cls.PREFERENCES[digest[3] % len(cls.PREFERENCES)])
        # Consecutive bank entries from a digest-chosen start never repeat a sentence.
        first_reflection = digest[4] % len(cls.REFLECTIONS)
        offset = 0
        while len(sentences) < sentence_count - 1:
            sentences.append(cls.REFLECTIONS[(first_reflection + offset) % len(cls.REFLECTIONS)])
            offset += 1
        if len(sentences) < sentence_count:
            sentences.append(cls.CLOSINGS[digest[5] % len(cls.CLOSINGS)])
        return " ".join(sentences)


class ScriptedReplies:
    """Replies a test set in advance, in front of another responder.

    The first entry ``{"when": TEXT, "text": REPLY}`` whose ``when`` is part of the
    request's last user message gives the reply; any other request goes to ``fallback``.
    The script is replaced whole (never changed in place), so a responder thread reading
    it sees either the old script or the new one.
    """

    def __init__(self, fallback: Responder) -> None:
        self.fallback = fallback
        self.script: tuple[dict[str, Any], ...] = ()

    def respond(self, request: MessagesRequest) -> ResponderReply:
        """The scripted reply to ``request``, or the fallback's."""
        question = request.last_user_text()
        for entry in self.script:
            if entry["when"] in question:
                return ResponderReply(text=entry["text"], model=stand_in_model_label(request.model))
        return self.fallback.respond(request)
