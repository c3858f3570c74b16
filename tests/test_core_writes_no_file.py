"""DESIGN rule "core writes files only through a port", checked mechanically.

Core reaches the filesystem through ports (``RunStore`` for the run directory,
``ResultsStore`` for evaluation results, ``BlobStore``/``DatasetStore``), so a call that
opens or writes a file, or changes a directory, has no place in ``src/crucible_train/core``.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "crucible_train"

# os.<name>(...) calls that open, write, sync or change files or directories.
_OS_CALLS = frozenset(
    {
        "open",
        "write",
        "fsync",
        "fdatasync",
        "replace",
        "rename",
        "truncate",
        "ftruncate",
        "remove",
        "unlink",
        "mkdir",
        "makedirs",
        "rmdir",
        "removedirs",
        "link",
        "symlink",
    }
)
# <path>.<name>(...) calls of pathlib that write or change the filesystem.
_PATH_METHODS = frozenset(
    {"write_text", "write_bytes", "mkdir", "touch", "unlink", "rmdir", "rename", "symlink_to"}
)
# Modules whose every use in core would be file work.
_MODULES = frozenset({"shutil", "tempfile", "io", "mmap"})


def _file_work(source: str) -> list[tuple[int, str]]:
    """``(line, what)`` for each call or import in ``source`` that opens or writes files."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, f"import {a.name}") for a in node.names if a.name in _MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module in _MODULES:
            found.append((node.lineno, f"from {node.module} import ..."))
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id == "open":
                found.append((node.lineno, "open()"))
            elif isinstance(func, ast.Attribute):
                owner = func.value
                if isinstance(owner, ast.Name) and owner.id == "os" and func.attr in _OS_CALLS:
                    found.append((node.lineno, f"os.{func.attr}()"))
                elif func.attr in _PATH_METHODS:
                    found.append((node.lineno, f".{func.attr}()"))
    return sorted(found)


def test_core_opens_and_writes_no_file() -> None:
    problems = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {what}"
        for path in sorted((PACKAGE / "core").rglob("*.py"))
        for line, what in _file_work(path.read_text(encoding="utf-8"))
    ]
    assert problems == [], "core must reach files through a port:\n" + "\n".join(problems)


def test_the_checker_catches_file_work() -> None:
    source = (
        "import os, shutil\n"
        "from pathlib import Path\n"
        "def f(p):\n"
        "    with open(p, 'ab') as h:\n"
        "        h.write(b'x')\n"
        "    fd = os.open(p, os.O_WRONLY)\n"
        "    os.write(fd, b'x')\n"
        "    os.fsync(fd)\n"
        "    Path(p).write_text('x')\n"
        "    Path(p).parent.mkdir()\n"
        "    return 'a'.replace('a', 'b')\n"  # str methods are not file work
    )
    assert [what for _line, what in _file_work(source)] == [
        "import shutil",
        "open()",
        "os.open()",
        "os.write()",
        "os.fsync()",
        ".write_text()",
        ".mkdir()",
    ]
