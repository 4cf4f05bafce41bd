"""Steering the devstack's Messages stand-in over HTTP: its fault queue, scripted replies,
request log and the models it serves."""

from __future__ import annotations

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


def last_question(entry: dict[str, Any]) -> str:
    """The question a logged request asked: the content of its last message."""
    content: str = entry["json"]["messages"][-1]["content"]
    return content
