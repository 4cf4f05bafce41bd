"""The private Prefect names Sunset relies on, pinned: an upgrade that moves them fails here.

``flows/limits.py`` needs the lease id that the public ``concurrency()`` context manager
hides, so it calls the functions that context manager is made of. Prefect may move or
change those in any release; these tests say so by name instead of a flow failing later.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import prefect
import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
WRITTEN_FOR = "3.9.1"

# Module -> private-module name -> the keyword arguments Sunset passes it.
PINNED: dict[str, dict[str, set[str]]] = {
    "prefect.concurrency._leases": {
        "maintain_concurrency_lease": {
            "lease_id",
            "lease_duration",
            "raise_on_lease_renewal_failure",
        },
    },
    "prefect.concurrency._sync": {
        "acquire_concurrency_slots_with_lease": {
            "names",
            "slots",
            "timeout_seconds",
            "lease_duration",
            "strict",
            "holder",
        },
        "release_concurrency_slots_with_lease": {"lease_id"},
    },
}


def _upgrade_note(what: str) -> str:
    return (
        f"{what}. flows/limits.py was written for Prefect {WRITTEN_FOR} and this is "
        f"Prefect {prefect.__version__}: find where the release moved the function (the "
        "body of prefect.concurrency.sync.concurrency shows it), update flows/limits.py "
        "and this pin, and run tests/test_deprecate_flow.py."
    )


@pytest.mark.parametrize(
    ("module", "name"),
    [(module, name) for module, names in PINNED.items() for name in names],
)
def test_the_private_prefect_name_is_where_flows_limits_imports_it(module: str, name: str) -> None:
    try:
        found = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        pytest.fail(_upgrade_note(f"{module}.{name} is gone"))

    missing = PINNED[module][name] - set(inspect.signature(found).parameters)
    assert not missing, _upgrade_note(f"{module}.{name} no longer takes {sorted(missing)}")


def test_every_private_prefect_import_of_the_project_is_pinned() -> None:
    imported: set[tuple[str, str]] = set()
    for folder in ("flows", "tasks", "deployments", "sunset"):
        for source in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(source.read_text())):
                if isinstance(node, ast.ImportFrom) and _is_private_prefect(node.module or ""):
                    imported |= {(node.module or "", alias.name) for alias in node.names}
                if isinstance(node, ast.Import):
                    imported |= {
                        (alias.name, "") for alias in node.names if _is_private_prefect(alias.name)
                    }

    pinned = {(module, name) for module, names in PINNED.items() for name in names}
    assert imported == pinned, "pin every private Prefect import here, and only those"


def _is_private_prefect(module: str) -> bool:
    parts = module.split(".")
    return parts[0] == "prefect" and any(part.startswith("_") for part in parts)
