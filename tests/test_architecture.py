"""The layout keeps its promises (docs/architecture.md): public surfaces, one importer per hardware
library, small modules."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "firmware" / "callrec"
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)
PACKAGES = sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py"))


def _imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, module, names) of every `from X import names` and `import X` in a file, lazy ones too."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names]
    return found


def _package_of(path: Path) -> str | None:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else None


def test_other_packages_are_imported_only_through_their_public_surface():
    offences = []
    for path in MODULES:
        own = _package_of(path)
        for line, module, names in _imports(path):
            parts = module.split(".")
            if parts[0] != "callrec" or len(parts) < 3 or parts[1] == own:
                continue
            offences.append(f"{path.relative_to(PACKAGE)}:{line} imports {module} ({', '.join(names)})")
    assert offences == []


@pytest.mark.parametrize("package", PACKAGES)
def test_every_package_names_its_public_surface_and_every_name_is_there(package):
    module = importlib.import_module(f"callrec.{package}")
    names = getattr(module, "__all__", None)
    assert names, f"callrec.{package} has no __all__"
    assert [name for name in names if not hasattr(module, name)] == []


@pytest.mark.parametrize("library,backend", [("alsaaudio", "audio/alsa.py"), ("RPi", "line/gpio_rpi.py")])
def test_each_hardware_library_is_imported_by_its_one_backend(library, backend):
    importers = sorted(str(path.relative_to(PACKAGE)) for path in MODULES
                       if any(module.split(".")[0] == library for _, module, _ in _imports(path)))
    assert importers == [backend]


def test_modules_stay_small():
    big = {str(path.relative_to(PACKAGE)): n for path in MODULES
           if (n := len(path.read_text().splitlines())) > 600}
    assert big == {}
