"""The serving gateway: where requests for a model are routed, told of every status change.

A gateway holds one route per model (its serving status and the recommended successor)
behind a two-method interface, so the flip can write a route, read it back to check,
and write the previous one again to undo. Two built-in adapters:

* ``RoutingFile``: a JSON file the gateway reads (``{"models": {id: route}}``), replaced
  atomically under a lock;
* ``HttpGateway``: the gateway's own endpoint, ``PUT``/``GET``/``DELETE
  {url}/models/{model_id}`` with a JSON route and an optional bearer token.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import httpx
from pydantic import SecretStr

from sunset.errors import GatewayError, InputError, TransientError
from sunset.ledger import ServingStatus, utcnow


@dataclass(frozen=True)
class Route:
    """How the gateway serves one model."""

    status: ServingStatus
    replacement: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"status": self.status.value, "replacement": self.replacement}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Route:
        return cls(ServingStatus(value["status"]), value.get("replacement"))


class ServingGateway(Protocol):
    """Reads and writes the route of one model; ``None`` means no route at all."""

    description: str

    def read(self, model_id: str) -> Route | None: ...

    def write(self, model_id: str, route: Route | None) -> None: ...

    def check(self, model_id: str) -> None:
        """Prove the route of ``model_id`` can be read, and written when the flip comes."""
        ...


class RoutingFile:
    """A JSON routing file, rewritten whole and atomically for every change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = f"routing file {path}"

    def read(self, model_id: str) -> Route | None:
        value = self._load().get(model_id)
        return Route.from_json(value) if value else None

    def write(self, model_id: str, route: Route | None) -> None:
        with self._locked():
            routes = self._load()
            if route is None:
                routes.pop(model_id, None)
            else:
                routes[model_id] = route.as_json() | {"updated_at": utcnow().isoformat()}
            temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            with temporary.open("w", encoding="utf-8") as out:
                json.dump({"models": routes}, out, indent=2, sort_keys=True)
                out.write("\n")
                out.flush()
                os.fsync(out.fileno())
            temporary.replace(self.path)

    def check(self, model_id: str) -> None:
        """The file reads as routes (or is not there yet), and its directory, or the nearest
        one above it to be made, can be written: the file is replaced, never written in place.

        Raises:
            GatewayError: the file is not valid JSON.
            InputError: the directory cannot be written.
        """
        self.read(model_id)
        directory = _nearest_existing(self.path.parent)
        if not os.access(directory, os.W_OK):
            raise InputError(
                f"The routing file {self.path} cannot be written ({directory} is not "
                "writable); check SUNSET_GATEWAY_ROUTING_FILE (default: routing.json in "
                "SUNSET_DATA_DIR)."
            )

    def _load(self) -> dict[str, Any]:
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except json.JSONDecodeError as exc:
            raise GatewayError(
                f"Routing file {self.path} is not valid JSON ({exc}); repair it before any "
                "serving status is changed."
            ) from None
        return dict(document.get("models", {}))

    @contextmanager
    def _locked(self) -> Iterator[None]:
        # Runs for different models may write the same file at the same time.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.with_name(f".{self.path.name}.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


class HttpGateway:
    """The gateway's HTTP endpoint: one resource per model."""

    def __init__(self, url: str, token: SecretStr | None = None, timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.description = f"gateway {self.url}"
        headers = {"Authorization": f"Bearer {token.get_secret_value()}"} if token else {}
        self._client = httpx.Client(timeout=timeout_s, headers=headers, follow_redirects=False)

    def read(self, model_id: str) -> Route | None:
        response = self._call("GET", model_id)
        if response.status_code == 404:
            return None
        return Route.from_json(response.json())

    def write(self, model_id: str, route: Route | None) -> None:
        if route is None:
            self._call("DELETE", model_id)
        else:
            self._call("PUT", model_id, json=route.as_json())

    def check(self, model_id: str) -> None:
        """One GET of the model's route: the gateway answers and takes the token.

        Raises:
            TransientError: no answer, a 5xx, a 408 or 429.
            GatewayError: any other refusal (the sentence names the settings).
        """
        self._call("GET", model_id)

    def close(self) -> None:
        self._client.close()

    def _call(self, method: str, model_id: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._client.request(
                method, f"{self.url}/models/{quote(model_id, safe='')}", **kwargs
            )
        except httpx.TransportError as exc:
            raise TransientError(
                f"The serving gateway at {self.url} could not be reached ({type(exc).__name__})."
            ) from None
        if response.status_code >= 500 or response.status_code in (408, 429):
            raise TransientError(
                f"The serving gateway at {self.url} answered {response.status_code} to {method}."
            )
        if response.status_code >= 400 and not (method != "PUT" and response.status_code == 404):
            raise GatewayError(
                f"The serving gateway at {self.url} refused {method} for {model_id} with "
                f"{response.status_code}; check SUNSET_GATEWAY_URL and SUNSET_GATEWAY_TOKEN."
            )
        return response


def _nearest_existing(directory: Path) -> Path:
    """``directory`` or, when it is not there yet, the nearest folder above it that is."""
    while not directory.exists() and directory != directory.parent:
        directory = directory.parent
    return directory


def check_route(gateway: ServingGateway, model_id: str, expected: Route) -> None:
    """Read the route back and compare it with what was written.

    Raises:
        GatewayError: the gateway serves something else.
    """
    found = gateway.read(model_id)
    if found != expected:
        shown = found.status.value if found else "no route"
        raise GatewayError(
            f"After the flip, {gateway.description} shows {model_id} as {shown}, not "
            f"{expected.status.value}; the flip is rolled back."
        )
