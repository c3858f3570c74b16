"""The dependency rule, checked mechanically: core → ports ← adapters; container wires.

``lint-imports`` (import-linter contracts in pyproject.toml) runs in the test command too;
these tests need nothing but the standard library, so the rule holds even where
import-linter is not installed, and they also catch imports hidden inside functions.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "crucible_train"

HEAVY_OR_VENDOR = (
    "torch",
    "transformers",
    "safetensors",
    "requests",
    "wandb",
    "neptune",
    "tinker",
    "sentence_transformers",
    "huggingface_hub",
    "dependency_injector",
    "yaml",
    "rich",
)


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every module name imported anywhere in ``path`` (top level or inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.extend((node.lineno, node.module) for _ in node.names)
    return found


def _inner_layer_files() -> list[Path]:
    files = sorted((PACKAGE / "core").rglob("*.py")) + sorted((PACKAGE / "ports").rglob("*.py"))
    files += [PACKAGE / "types.py", PACKAGE / "errors.py", PACKAGE / "config.py"]
    return [f for f in files if f.exists()]


def _violations(files: list[Path], banned: tuple[str, ...]) -> list[str]:
    out = []
    for path in files:
        for line, module in _imports(path):
            if any(module == b or module.startswith(b + ".") for b in banned):
                shown = path.relative_to(PACKAGE.parent) if path.is_relative_to(PACKAGE) else path
                out.append(f"{shown}:{line} imports {module}")
    return out


def test_core_ports_and_shared_types_never_import_adapters_or_heavy_sdks():
    banned = ("crucible_train.adapters", "crucible_train.container", "crucible_train.entrypoints")
    assert _violations(_inner_layer_files(), banned + HEAVY_OR_VENDOR) == []


def test_ports_do_not_depend_on_core():
    ports = sorted((PACKAGE / "ports").rglob("*.py"))
    assert _violations(ports, ("crucible_train.core",)) == []


def test_only_the_wiring_diagram_imports_adapters():
    diagram = PACKAGE / "container" / "wiring.py"
    outside = [
        p
        for p in PACKAGE.rglob("*.py")
        if "adapters" not in p.relative_to(PACKAGE).parts and p != diagram
    ]
    assert diagram.is_file()
    assert _violations([diagram], ("crucible_train.adapters",)) != []
    assert _violations(outside, ("crucible_train.adapters",)) == []


def test_the_checker_catches_a_violation(tmp_path):
    # Guards against the check silently passing because it scans nothing.
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    import torch.nn\n    from crucible_train.adapters import x\n")
    assert _violations([bad], ("torch", "crucible_train.adapters")) != []
    assert len(_inner_layer_files()) >= 15


def test_core_and_ports_import_with_heavy_sdks_unavailable():
    script = textwrap.dedent(
        f"""
        import importlib, pkgutil, sys
        banned = {HEAVY_OR_VENDOR!r}
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in banned:
                    raise ImportError("blocked by layer test: " + name)
        sys.meta_path.insert(0, Block())
        import crucible_train.core, crucible_train.ports
        for pkg in (crucible_train.core, crucible_train.ports):
            for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
                importlib.import_module(info.name)
        import crucible_train.types, crucible_train.errors
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(PACKAGE.parent), "PATH": ""},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


@pytest.mark.parametrize("layer", ["core", "ports"])
def test_layer_packages_exist(layer):
    assert (PACKAGE / layer / "__init__.py").is_file()
