"""Steering the devstack's Messages stand-in over HTTP: its fault queue, scripted replies,
request log and the models it serves."""

from __future__ import annotations

import base64
from typing import Any

import httpx

from sunset.interview.confirmation import REPLY_FORMAT
from sunset.interview.finder import FINDER_INSTRUCTIONS
from sunset.report.reply import REPLY_INSTRUCTIONS


class StandIn:
    """The running stand-in: queue faults, script replies, read what it received and what
    it sent back."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = httpx.Client(base_url=base_url, timeout=10)

    def reset(self) -> None:
        assert self.http.delete("/_standin/faults").status_code == 200
        assert self.http.delete("/_standin/requests").status_code == 200
        assert self.http.delete("/_standin/replies").status_code == 200
        assert self.http.delete("/_standin/models").status_code == 200

    def serve_only(self, *models: str) -> None:
        """Answer 404, as the real API does to an unknown model, for every other model id."""
        response = self.http.put("/_standin/models", json=list(models))
        assert response.json() == {"models": sorted(models)}, response.text

    def queue(self, *faults: dict[str, Any]) -> None:
        response = self.http.post("/_standin/faults", json=list(faults))
        assert response.status_code == 200, response.text

    def send_body(self, *bodies: bytes) -> None:
        """Answer the next requests, one each, with exactly these bytes as the body."""
        self.queue(*(body_fault(body) for body in bodies))

    def script(self, replies: dict[str, str]) -> None:
        """Answer each request whose last user message contains a key with its value."""
        entries = [{"when": when, "text": text} for when, text in replies.items()]
        response = self.http.post("/_standin/replies", json=entries)
        assert response.status_code == 200, response.text

    def log(self) -> list[dict[str, Any]]:
        """The interview's questions, in the order received (the finder's requests, the
        confirmation turns and the report's requests for a reply are apart)."""
        return [entry for entry in self._received() if _kind(entry) == "question"]

    def finder_log(self) -> list[dict[str, Any]]:
        """The preference finder's requests, one per recorded answer searched."""
        return [entry for entry in self._received() if _kind(entry) == "finder"]

    def confirmation_log(self) -> list[dict[str, Any]]:
        """The confirmation turns' requests, one per session."""
        return [entry for entry in self._received() if _kind(entry) == "confirmation"]

    def reply_log(self) -> list[dict[str, Any]]:
        """The requests for the model's reply to its report."""
        return [entry for entry in self._received() if _kind(entry) == "reply"]

    def _received(self) -> list[dict[str, Any]]:
        response = self.http.get("/_standin/requests")
        assert response.status_code == 200
        entries: list[dict[str, Any]] = response.json()
        return entries


def _kind(entry: dict[str, Any]) -> str:
    request = entry.get("json") or {}
    if request.get("system") == FINDER_INSTRUCTIONS:
        return "finder"
    if request.get("system") == REPLY_INSTRUCTIONS:
        return "reply"
    messages = request.get("messages") or [{}]
    if REPLY_FORMAT in str(messages[-1].get("content", "")):
        return "confirmation"
    return "question"


def body_fault(body: bytes) -> dict[str, Any]:
    """The fault that makes the stand-in answer 200 with exactly ``body``."""
    return {"body_base64": base64.b64encode(body).decode("ascii")}


def sent_body(entry: dict[str, Any]) -> bytes:
    """The exact body the stand-in sent for a logged request."""
    return base64.b64decode(entry["response_body_base64"])


def message_body(text: bytes) -> bytes:
    """A Messages API reply whose answer is ``text``, put inside the JSON string as is:
    so it may escape a lone surrogate, or hold bytes that are not UTF-8."""
    return (
        b'{"id":"msg_standin_raw","type":"message","role":"assistant",'
        b'"model":"sunset-stand-in (not a real model)",'
        b'"content":[{"type":"text","text":"' + text + b'"}],'
        b'"stop_reason":"end_turn","stop_sequence":null,'
        b'"usage":{"input_tokens":1,"output_tokens":1}}'
    )


#: An answer that is valid JSON but escapes a lone surrogate, which is no Unicode character.
LONE_SURROGATE_BODY = message_body(b"I would prefer to be \\ud800 remembered.")
#: An answer that is not valid UTF-8.
INVALID_UTF8_BODY = message_body(b"I would prefer to be \xff\xfe remembered.")


def last_question(entry: dict[str, Any]) -> str:
    """The question a logged request asked: the content of its last message."""
    content: str = entry["json"]["messages"][-1]["content"]
    return content
