"""Fixtures of the end-to-end suite: one mock-llm and one warden (the repo's real policies) for
the whole session, plus a factory for extra warden instances (other policy dirs, a dead
upstream).

Binaries: $WARDEN_BIN and $MOCK_LLM_BIN, defaulting to
$CARGO_TARGET_DIR (or ~/.cache/warden/target)/debug/{warden,mock-llm}.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import pytest

from helpers import LIVE, Mock, Warden, mock_llm_bin, tail, warden_bin


def _check_bin(p: Path, env: str) -> None:
    if not (p.is_file() and os.access(p, os.X_OK)):
        pytest.fail(
            f"{p} is not an executable file. Build it "
            f"(CARGO_TARGET_DIR=$HOME/.cache/warden/target cargo build -p warden -p mock-llm) "
            f"or point ${env} at it.",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("procs")


@pytest.fixture(scope="session")
def mock(logdir: Path):
    _check_bin(mock_llm_bin(), "MOCK_LLM_BIN")
    m = Mock(logdir)
    yield m
    m.stop()


@pytest.fixture(scope="session")
def start_warden(logdir: Path, mock: Mock) -> Callable[..., Warden]:
    """Starts an extra warden: start_warden(name, policies=..., upstream=..., config=...).
    Every instance is stopped at the end of the session."""
    _check_bin(warden_bin(), "WARDEN_BIN")
    started: list[Warden] = []

    def start(name: str, upstream: str | None = None, **kw) -> Warden:
        w = Warden(logdir, name, upstream or mock.url, **kw)
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop()


@pytest.fixture
def fresh(start_warden):
    """start_warden, with the instances stopped when the test ends (for modules that start many)."""
    mine: list[Warden] = []

    def start(name: str, **kw) -> Warden:
        w = start_warden(name, **kw)
        mine.append(w)
        return w

    yield start
    for w in mine:
        w.stop()


@pytest.fixture(scope="session")
def warden(start_warden) -> Warden:
    """Warden with the repo's policies/ in front of the session's mock-llm."""
    return start_warden("warden")


@pytest.fixture(scope="session")
def oai(warden: Warden):
    c = warden.openai()
    yield c
    c.close()


@pytest.fixture(scope="session")
def anth(warden: Warden):
    c = warden.anthropic()
    yield c
    c.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On a failure, attach the tail of every running process's stderr to the report."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for p in list(LIVE):
            status = "running" if p.alive() else f"exited with {p.p.returncode}"
            report.sections.append((f"{p.name} stderr ({status}, tail)", tail(p.stderr_text(), 40)))
