"""Shared fixtures: config composition with outputs under tmp_path, the published data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from support import CONF, DATA, ROOT, TINY, compose_config
from threadpoolctl import threadpool_limits


@pytest.fixture(scope="session")
def root() -> Path:
    """The project's root folder (run.py, conf/, examples/)."""
    return ROOT


@pytest.fixture(scope="session")
def conf_dir() -> Path:
    """The project's config folder."""
    return CONF


@pytest.fixture(scope="session")
def tiny() -> list[str]:
    """Overrides for a run of seconds on the CPU (shared: extend a copy, ``[*tiny, ...]``)."""
    return list(TINY)


@pytest.fixture(scope="session")
def compose():
    """``compose(overrides)``: conf/config.yaml composed with ``overrides``."""
    return compose_config


@pytest.fixture
def data_dir() -> Path:
    if not DATA.is_dir():
        pytest.skip(f"published reference data not found at {DATA}")
    return DATA


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """The tests' arrays are small: one torch and one BLAS thread avoid oversubscription, where
    two spinning threads made some cases 20-100x slower on a loaded 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _keep_default_dtype():
    dtype = torch.get_default_dtype()
    yield
    torch.set_default_dtype(dtype)


def pytest_report_header(config):
    """Says, before the first test, that the default command leaves the slow tests out (a
    module of slow tests alone, tests/test_install.py's end-to-end checks, would otherwise
    seem to pass while running nothing)."""
    if "not slow" in (config.option.markexpr or ""):
        return "slow tests are left out (-m 'not slow'): run them with `python -m pytest -m slow`"
    return None


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


os.environ.setdefault("HYDRA_FULL_ERROR", "0")
# Subprocesses started by the tests inherit one thread too (see _one_thread).
os.environ.setdefault("OMP_NUM_THREADS", "1")
