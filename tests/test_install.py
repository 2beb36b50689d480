"""The installed package works outside the checkout: configs shipped in the wheel, the
``pinn-exp`` console script, the compose helper, ``load_run``.

By default (``python -m pytest tests/test_install.py``) only the quick check of the installed
metadata runs: the two end-to-end tests build the wheel, install it into a fresh virtual
environment and run a job from there (minutes), so they are marked ``slow`` and left out, as
the line "slow tests are left out" of pytest's header says. Run them with
``python -m pytest -m slow tests/test_install.py`` (``.ci/run`` runs every slow test).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import site
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest
from support import patient


@pytest.fixture(scope="module")
def installed(tmp_path_factory, root) -> Path:
    """A fresh venv (seeing the packages of the interpreter running the suite) with the
    project's wheel installed into it; returns its bin directory."""
    pytest.importorskip("hatchling", reason="the dev extra installs hatchling")
    tmp = tmp_path_factory.mktemp("install")
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp / "dist"),
            str(root),
        ],
        capture_output=True,
        text=True,
        timeout=patient(300),
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = (tmp / "dist").glob("pinn_exp-*.whl")
    venv.create(tmp / "venv", with_pip=True)
    bin_dir = tmp / "venv" / "bin"
    _see_this_interpreters_packages(bin_dir / "python")
    install = subprocess.run(
        [
            str(bin_dir / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=patient(300),
    )
    assert install.returncode == 0, install.stderr
    return bin_dir


def _see_this_interpreters_packages(python: Path) -> None:
    """Lets the nested venv import what this interpreter has (torch, Hydra, ...) through a
    ``.pth`` file. ``system_site_packages`` would point at the base interpreter, which lacks
    them when the suite itself runs from a venv. The lines are appended to ``sys.path`` after
    the venv's own site-packages, so the wheel's copy of pinn_exp wins over any editable
    install, whose own ``.pth`` files are not processed from there."""
    where = "import sysconfig; print(sysconfig.get_path('purelib'))"
    purelib = subprocess.run(
        [str(python), "-c", where], capture_output=True, text=True, check=True
    ).stdout.strip()
    ours = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib"), *site.getsitepackages()}
    (Path(purelib) / "_parent_packages.pth").write_text("\n".join(sorted(ours)) + "\n")


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return {**env, "HYDRA_FULL_ERROR": "1"}


def test_installed_metadata_is_the_checkouts(root):
    """Not slow, so that this module checks something by default: the installed distribution
    (``pip install -e .``) has pyproject.toml's version, console script and dependencies, the
    script's target imports, and every path the wheel force-includes (conf/, the launcher
    plugin) exists in the checkout."""
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    requirements = pytest.importorskip("packaging.requirements")  # hatchling's dependency
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    project = pyproject["project"]
    dist = importlib.metadata.distribution(project["name"])
    stale = "the install is older than pyproject.toml: pip install -e '.[dev,launchers]'"
    assert dist.version == project["version"], stale
    scripts = {ep.name: ep for ep in dist.entry_points if ep.group == "console_scripts"}
    assert {name: ep.value for name, ep in scripts.items()} == project["scripts"], stale
    for ep in scripts.values():
        assert callable(ep.load())

    def parsed(lines):
        return {(r.name.lower(), r.specifier) for r in map(requirements.Requirement, lines)}

    core = [line for line in dist.requires or [] if "extra ==" not in line]
    assert parsed(core) == parsed(project["dependencies"]), stale
    wheel = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]
    for source in [*wheel["packages"], *wheel["force-include"]]:
        assert (root / source).is_dir(), f"the wheel includes {source}, which is missing"


@pytest.mark.slow  # end-to-end and minutes long: `pytest -m slow` (run by .ci/run)
def test_console_script_runs_a_job_from_another_directory(installed, tmp_path, tiny):
    where = subprocess.run(
        [
            str(installed / "python"),
            "-c",
            "import pinn_exp.config as c; print(c.__file__); print(c.CONF_DIR)",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=_env(),
    )
    module, conf = where.stdout.split()
    assert str(installed.parent) in module  # the wheel's copy, not the checkout
    assert Path(conf).is_dir() and str(installed.parent) in conf
    out = tmp_path / "run"
    proc = subprocess.run(
        [str(installed / "pinn-exp"), *tiny, "rounds=1", f"hydra.run.dir={out}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=patient(300),
        env=_env(),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((out / "metrics.json").read_text())
    assert record["status"] == "ok" and (out / "run.log").is_file()
    # the installed package loads its run back and recomputes the recorded error
    check = subprocess.run(
        [
            str(installed / "python"),
            "-c",
            f"import pinn_exp; r = pinn_exp.load_run({str(out)!r}); "
            "print(r.evaluate() == r.metrics['l2_rel_error'])",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=_env(),
    )
    assert check.stdout.strip() == "True", check.stderr[-2000:]


@pytest.mark.slow  # end-to-end and minutes long: `pytest -m slow` (run by .ci/run)
def test_installed_compose_helper_and_experiments(installed, tmp_path):
    code = (
        "from pinn_exp.config import compose_config; "
        "c = compose_config(['+experiment=burgers_table', 'budget=short']); "
        "print(c.rounds, c.pde._target_)"
    )
    proc = subprocess.run(
        [str(installed / "python"), "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=_env(),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["3", "pinn_exp.pdes.Burgers"]
