"""Steering the devstack's Messages stand-in over HTTP: its fault queue, scripted replies
and request log."""

from __future__ import annotations

from typing import Any

import httpx

from sunset.interview.finder import FINDER_INSTRUCTIONS


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

    def queue(self, *faults: dict[str, Any]) -> None:
        response = self.http.post("/_standin/faults", json=list(faults))
        assert response.status_code == 200, response.text

    def script(self, replies: dict[str, str]) -> None:
        """Answer each request whose last user message contains a key with its value."""
        entries = [{"when": when, "text": text} for when, text in replies.items()]
        response = self.http.post("/_standin/replies", json=entries)
        assert response.status_code == 200, response.text

    def log(self) -> list[dict[str, Any]]:
        """The interview's requests, in the order received (the finder's are apart)."""
        return [entry for entry in self._received() if not _asks_the_finder(entry)]

    def finder_log(self) -> list[dict[str, Any]]:
        """The preference finder's requests, one per recorded answer searched."""
        return [entry for entry in self._received() if _asks_the_finder(entry)]

    def _received(self) -> list[dict[str, Any]]:
        response = self.http.get("/_standin/requests")
        assert response.status_code == 200
        entries: list[dict[str, Any]] = response.json()
        return entries


def _asks_the_finder(entry: dict[str, Any]) -> bool:
    return bool((entry.get("json") or {}).get("system") == FINDER_INSTRUCTIONS)


def last_question(entry: dict[str, Any]) -> str:
    """The question a logged request asked: the content of its last message."""
    content: str = entry["json"]["messages"][-1]["content"]
    return content
