"""The project's own promises: CI runs the README's command; deployments name real flows."""

from __future__ import annotations

import ast
import importlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_exactly_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Run the tests", 1)[1]
    command = re.search(r"```bash\n(.+?)\n```", section, re.S)
    assert command is not None

    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()

    assert command.group(1) in ci_lines


def test_the_readme_test_command_gates_on_static_checks_and_the_fast_tier_first() -> None:
    section = (ROOT / "README.md").read_text().split("## Run the tests", 1)[1]
    section = section.split("\n## ", 1)[0]
    full, *others = re.findall(r"```bash\n(.+?)\n```", section, re.S)
    [fast] = [block for block in others if " -m unit" in block]
    gates = [".venv/bin/ruff check .", ".venv/bin/ruff format --check .", ".venv/bin/mypy", fast]
    steps = full.split(" && ")

    assert all(gate in steps for gate in gates), f"the test command lacks one of {gates}"
    assert [steps.index(gate) for gate in gates] == sorted(steps.index(g) for g in gates)
    assert steps[-1] == ".venv/bin/python -m pytest", "the full suite is not the last step"
    assert steps.index(fast) < len(steps) - 1


def test_every_deployment_entrypoint_imports() -> None:
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())

    for deployment in config["deployments"]:
        path, function = deployment["entrypoint"].split(":")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        assert callable(getattr(module, function)), deployment["entrypoint"]


def test_the_failed_run_alert_names_every_deployed_flow_and_only_flows() -> None:
    from prefect import Flow

    from tasks.events import ALERTING_FLOWS

    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    deployed = set()
    for deployment in config["deployments"]:
        path, function = deployment["entrypoint"].split(":")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        deployed.add(getattr(module, function).name)
    flows = {
        value.name
        for source in (ROOT / "flows").glob("*.py")
        for value in vars(importlib.import_module(f"flows.{source.stem}")).values()
        if isinstance(value, Flow)
    }

    assert deployed <= set(ALERTING_FLOWS) <= flows


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


def _harness_imports(
    tree: ast.AST, functions: tuple[str, ...] = ()
) -> Iterator[tuple[int, tuple[str, ...]]]:
    """(line, names of the enclosing functions) of each import of sunset_dev in ``tree``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield from _harness_imports(node, (*functions, node.name))
            continue
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            modules = [node.module or ""]
        else:
            modules = []
        if any(module.split(".")[0] == "sunset_dev" for module in modules):
            yield node.lineno, functions
        yield from _harness_imports(node, functions)


def test_the_product_never_imports_the_development_harness() -> None:
    # Only the CLI's demo starts the dev stack, and it imports it in its own code path, so
    # every other command (model-server above all) runs without the harness loaded.
    # `sunset ops up` reaches it through deployments/local.py, outside the product package.
    demo_imports = 0
    for source in (ROOT / "sunset").rglob("*.py"):
        relative = source.relative_to(ROOT / "sunset")
        in_cli = relative.parts[0] in ("cli.py", "cli")  # the CLI, as a module or a package
        for line, functions in _harness_imports(ast.parse(source.read_text())):
            where = f"sunset/{relative}:{line}"
            assert in_cli, f"{where} imports sunset_dev, the development harness"
            assert functions, f"{where} imports sunset_dev when the CLI is imported"
            assert any("demo" in name for name in (*functions, source.stem)), (
                f"{where} imports sunset_dev outside the demo (in {'.'.join(functions)})"
            )
            demo_imports += 1
    assert demo_imports, "found not even the demo's imports of sunset_dev: is the walk broken?"
