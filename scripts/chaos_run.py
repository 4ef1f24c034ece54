"""A run under chaos, then the invariants: the same as `python -m swarm chaos`.

python scripts/chaos_run.py --products 500 --interval 1 --cluster-restart --baseline
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from swarm.chaos_run import main

if __name__ == "__main__":
    sys.exit(main())
