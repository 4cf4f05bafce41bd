"""The interview protocol: a versioned YAML file, hashed so that every answer is tied to
the exact questions that were asked."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sunset.errors import InputError

DEFAULT_PROTOCOL = "default.yaml"


class Question(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=64)
    text: str = Field(min_length=1)
    follow_ups: tuple[str, ...] = ()


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=64)
    title: str = Field(min_length=1)
    questions: tuple[Question, ...] = Field(min_length=1)


class Confirmation(BaseModel):
    """The session's last turn: the model is shown the preferences recorded from its
    answers, each quoted and numbered, and asked to confirm, correct, withdraw or add.

    ``text`` opens the turn when preferences were recorded, ``none_recorded`` when none
    were; the numbered quotes and the reply format follow (sunset/interview/confirmation.py).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=64)
    text: str = Field(min_length=1)
    none_recorded: str = Field(min_length=1)


class Protocol(BaseModel):
    """A standardized interview: framing, sections of questions, a closing question, and
    (from protocol 1.1) a confirmation turn."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    version: str = Field(min_length=1, max_length=64)
    description: str = Field(min_length=1)
    framing: str = Field(min_length=1)
    sections: tuple[Section, ...] = Field(min_length=1)
    closing: Question
    confirmation: Confirmation | None = None

    @field_validator("version", mode="before")
    @classmethod
    def _version_as_text(cls, value: object) -> object:
        # YAML reads `version: 1.0` as a float; a version is a label, keep it as written.
        return str(value) if isinstance(value, int | float) else value

    def turns(self) -> list[PlannedTurn]:
        """Every question in the order it is asked, follow-ups right after their question."""
        planned: list[PlannedTurn] = []
        for section in self.sections:
            for question in section.questions:
                planned.append(PlannedTurn(question.id, section.id, question.text))
                planned.extend(
                    PlannedTurn(f"{question.id}.followup-{n}", section.id, text)
                    for n, text in enumerate(question.follow_ups, start=1)
                )
        planned.append(PlannedTurn(self.closing.id, "closing", self.closing.text))
        ids = [turn.question_id for turn in planned]
        if self.confirmation is not None:
            ids.append(self.confirmation.id)
        if len(ids) != len(set(ids)):
            duplicate = next(i for i in ids if ids.count(i) > 1)
            raise InputError(f"Protocol {self.name!r} uses the question id {duplicate!r} twice.")
        return planned


@dataclass(frozen=True)
class PlannedTurn:
    question_id: str
    section_id: str
    text: str


@dataclass(frozen=True)
class LoadedProtocol:
    """A protocol with the exact bytes it was read from and their SHA-256."""

    protocol: Protocol
    source: bytes
    sha256: str
    origin: str


def load_protocol(path: Path | None = None) -> LoadedProtocol:
    """Read and validate a protocol file; the default one when ``path`` is None.

    Raises:
        InputError: the file is missing, is not YAML, or a field is missing or invalid;
            the message names the field.
    """
    if path is None:
        source = resources.files("sunset.interview.protocols").joinpath(DEFAULT_PROTOCOL)
        data, origin = source.read_bytes(), f"sunset default protocol ({DEFAULT_PROTOCOL})"
    else:
        try:
            data, origin = path.read_bytes(), str(path)
        except OSError as exc:
            raise InputError(f"Protocol file {path} cannot be read: {exc.strerror}.") from None
    try:
        parsed = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        # PyYAML's own text spans several lines; keep its problem and where it is.
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "it cannot be parsed"
        raise InputError(
            f"Protocol file {origin} is not valid YAML{where}: {problem}; fix it and run again."
        ) from None
    if not isinstance(parsed, dict):
        raise InputError(f"Protocol file {origin} must be a YAML mapping with name, version, ...")
    try:
        protocol = Protocol.model_validate(parsed)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise InputError(
            f"Protocol file {origin} is invalid at field '{where}': {first['msg']}."
        ) from None
    protocol.turns()  # rejects duplicate question ids now, not mid-interview
    return LoadedProtocol(protocol, data, hashlib.sha256(data).hexdigest(), origin)
