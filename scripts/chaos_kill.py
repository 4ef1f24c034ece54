"""Kill swarm actors on a running cluster, to see the supervisor bring them back.

    python scripts/chaos_kill.py --target random --mode sigkill --interval 1-3 --count 20 --seed 7
    python scripts/chaos_kill.py --target journal --count 1
    python scripts/chaos_kill.py --target 'product-agent-*' --mode ray-kill --interval 0.5

Targets: a role, a glob over roles, `random` (any agent), `supervisor`,
`journal`, `any` (any swarm actor, warm standbys included). Only actors in the
swarm's namespace are touched. Each kill is printed as it happens.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from swarm.chaos import Kill, kill_loop, parse_interval, print_kill
from swarm.runtime import RayConnectionError, connect


def record_kill(kill: Kill, json_out: Path | None) -> None:
    print_kill(kill)
    if json_out is not None:
        with json_out.open("a") as out:
            out.write(json.dumps(dataclasses.asdict(kill)) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--address", help="Ray address (default: RAY_ADDRESS, else a local cluster)"
    )
    parser.add_argument("--target", default="random")
    parser.add_argument("--mode", choices=("sigkill", "ray-kill"), default="sigkill")
    parser.add_argument("--interval", default="1", help="seconds between kills: S or A-B")
    parser.add_argument(
        "--count", type=int, default=None, help="stop after N kills (default: never)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json-out", type=Path, help="also append each kill as a JSON line here")
    args = parser.parse_args(argv)
    try:
        interval = parse_interval(args.interval)
        connection = connect(args.address or "auto")
    except (ValueError, RayConnectionError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if connection.embedded:  # pragma: no cover - connect("auto") never embeds
        print("error: no cluster to attack", file=sys.stderr)
        return 2
    stop = threading.Event()
    try:
        kills = kill_loop(
            target=args.target,
            mode=args.mode,
            interval=interval,
            count=args.count,
            seed=args.seed,
            stop=stop,
            on_kill=lambda k: record_kill(k, args.json_out),
        )
    except KeyboardInterrupt:
        return 0
    print(f"{len(kills)} kills")
    return 0


if __name__ == "__main__":
    sys.exit(main())
