"""Run a script in a fresh interpreter (Python's and glibc's defaults, nothing this test
process changed) and read back the JSON object it prints."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any


def run_script(script: str, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, check=True
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result
