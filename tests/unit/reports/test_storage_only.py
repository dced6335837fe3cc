"""reports/ and the request-file door (watcher, reader, claims) touch data only through ``taxiflow.data.storage``.

So they work the same on a local folder and in a bucket: no ``pathlib``, no file-system calls of
``os``, no ``fcntl`` locks (which hold on one host only), no ``shutil``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[3] / "include" / "taxiflow"
MODULES = [*sorted((PACKAGE / "reports").glob("*.py")), PACKAGE / "components" / "triggers.py",
           PACKAGE / "doors" / "request_files.py", PACKAGE / "doors" / "request_claims.py"]
FORBIDDEN_MODULES = {"pathlib", "fcntl", "shutil", "tempfile"}
FILE_SYSTEM_CALLS = {"open", "scandir", "listdir", "lstat", "stat", "replace", "rename", "unlink", "remove",
                     "mkdir", "makedirs", "link", "symlink", "walk", "path", "fdopen", "chmod"}


@pytest.mark.parametrize("module", MODULES, ids=lambda path: path.relative_to(PACKAGE).as_posix())
def test_data_is_reached_only_through_the_storage_layer(module):
    tree = ast.parse(module.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.split(".")[0] in FORBIDDEN_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in FORBIDDEN_MODULES:
            found.append(node.module)
        elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "os"
              and node.attr in FILE_SYSTEM_CALLS):
            found.append(f"os.{node.attr} (line {node.lineno})")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "open":
            found.append(f"open() (line {node.lineno})")
    assert found == []
