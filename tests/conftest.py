"""Shared fixtures: where the real datasets are, and running the CLI in-process."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def real_data_dir() -> Path:
    return Path(os.environ.get("RESDEPTH_TEST_DATA") or ROOT.parent / "shared" / "data")


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The read-only real CIFAR-10 and MNIST; skip (or, in CI, fail) when they are absent."""
    path = real_data_dir()
    if not (path / "cifar-10-python.tar.gz").is_file():
        message = f"real datasets not found in {path} (set RESDEPTH_TEST_DATA)"
        if os.environ.get("RESDEPTH_REQUIRE_DATA"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    """Run `resdepth ARGS` through the real entry point; returns exit code and captured output."""
    from resdepth.cli import main

    def run(*args: str) -> Result:
        monkeypatch.setattr(sys, "argv", ["resdepth", *args])
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run
