"""Shared pytest fixtures and markers."""

import os
import pathlib

import pytest

# Quiet TensorFlow's C++ start-up logging; set before any test imports TF.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def pytest_configure(config):
    # pytest.ini may register it already; registering twice lists it twice.
    if not any(line.startswith("slow:") for line in config.getini("markers")):
        config.addinivalue_line(
            "markers", "slow: a long-running test (deselect with -m 'not slow')"
        )


@pytest.fixture(scope="session")
def shared_data():
    """Returns the pathlib.Path of the real data folder ../shared/data.

    A missing folder fails the test when the CI environment variable is set
    (so CI never passes by skipping) and skips it otherwise.
    """
    if not SHARED_DATA.is_dir():
        message = f"real data folder {SHARED_DATA} is missing"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI is set, so the real-data tests must run")
        pytest.skip(message)
    return SHARED_DATA
