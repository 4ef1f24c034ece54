"""The chaos soak CI runs: 200 products, a kill a second, then every invariant must hold.

It runs `python -m swarm chaos` exactly as a user does: a cluster of its own,
the swarm and the killer as separate processes; `--cluster-restart` adds one
whole-cluster crash and `resume` (the longer soak is marked slow).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from swarm.local_cluster import clean_env

pytestmark = pytest.mark.timeout(900)


def chaos(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, object]]:
    out = tmp_path / "report"
    result = subprocess.run(
        [sys.executable, "-m", "swarm", "chaos", "--out", str(out), *args],
        cwd=tmp_path,
        env={**clean_env(), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=850,
        check=False,
    )
    report = json.loads((out / "report.json").read_text()) if (out / "report.json").exists() else {}
    return result, report


def test_chaos_soak_keeps_every_invariant(tmp_path: Path) -> None:
    result, report = chaos(tmp_path, "--products", "200", "--interval", "1", "--seed", "3")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert report["ok"] is True
    kills = report["kills"]
    assert isinstance(kills, list)
    assert len(kills) >= 3, "the run ended before the killer got going"
    invariants = report["invariants"]
    assert isinstance(invariants, dict)
    assert invariants["completed"] == 200
    assert (tmp_path / "report" / "report.html").read_text().startswith("<!doctype html>")


@pytest.mark.slow
def test_chaos_soak_with_a_whole_cluster_crash(tmp_path: Path) -> None:
    result, report = chaos(
        tmp_path, "--products", "500", "--interval", "0.5-2", "--cluster-restart", "--seed", "5"
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert report["ok"] is True
    assert report["cluster_restarts"] == 1
