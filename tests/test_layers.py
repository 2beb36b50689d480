"""The layers of the package, as the import-linter contract in ``.importlinter`` states them:
the contract holds (lazy and TYPE_CHECKING imports counted), and every module of the package
is in one of its layers, so a new module cannot sit outside the contract."""

from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path

import pytest
from support import ROOT, patient

CONTRACT = ROOT / ".importlinter"


def _layers() -> list[str]:
    parser = configparser.ConfigParser()
    parser.read(CONTRACT)
    lines = parser["importlinter:contract:layers"]["layers"].split("\n")
    return [name.strip() for line in lines for name in line.split("|") if name.strip()]


def test_the_contract_holds():
    pytest.importorskip("importlinter", reason="the dev extra installs import-linter")
    command = Path(sys.executable).parent / "lint-imports"  # installed beside this Python
    proc = subprocess.run(
        [str(command), "--config", str(CONTRACT), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=patient(300),
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


def test_every_module_of_the_package_is_in_a_layer():
    package = ROOT / "pinn_exp"
    modules = {f"pinn_exp.{p.stem}" for p in package.glob("*.py") if p.stem != "__init__"}
    modules |= {f"pinn_exp.{p.parent.name}" for p in package.glob("*/__init__.py")}
    assert modules - set(_layers()) == set(), "add these modules to a layer of .importlinter"


def test_lazy_and_type_checking_imports_count():
    parser = configparser.ConfigParser()
    parser.read(CONTRACT)
    assert parser["importlinter"].get("exclude_type_checking_imports", "False") == "False"
