"""A `ray start --head` cluster per test: the user's way of running the swarm."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster import LocalCluster


@pytest.fixture
def cluster() -> Iterator[LocalCluster]:
    # Ray's socket paths must stay under 107 bytes: pytest's tmp_path is too deep
    temp_dir = Path(tempfile.mkdtemp(prefix="swarm-ray-"))
    started = LocalCluster(temp_dir).start()
    try:
        yield started
    finally:
        started.kill()
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert started.processes() == []
