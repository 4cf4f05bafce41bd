"""The project's own promises: CI runs the README's command; deployments name real flows."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_exactly_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Run the tests", 1)[1]
    command = re.search(r"```bash\n(.+?)\n```", section, re.S)
    assert command is not None

    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()

    assert command.group(1) in ci_lines


def test_every_deployment_entrypoint_imports() -> None:
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())

    for deployment in config["deployments"]:
        path, function = deployment["entrypoint"].split(":")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        assert callable(getattr(module, function)), deployment["entrypoint"]


def test_the_core_package_never_imports_prefect() -> None:
    for source in (ROOT / "sunset").rglob("*.py"):
        if source.is_relative_to(ROOT / "sunset" / "cli"):  # the top edge, allowed to start flows
            continue
        tree = ast.parse(source.read_text())
        for node in ast.walk(tree):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            assert not any(n.split(".")[0] in ("prefect", "flows", "tasks") for n in names), (
                f"{source.relative_to(ROOT)} imports {names}"
            )
