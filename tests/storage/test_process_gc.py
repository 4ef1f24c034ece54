"""`tune_gc`: the cyclic collector leaves an actor's long-lived objects alone and runs rarely.

Each case runs in a fresh interpreter with the agents' imports loaded, so it starts
from Python's default thresholds with a realistic heap.
"""

from __future__ import annotations

from typing import Any

from tests.storage.fresh_interpreter import run_script

SCRIPT = """
import gc, json, sys
import actors.durable, storage.journal  # the heap an agent process starts with
from storage.process_gc import tune_gc

if sys.argv[1] == "tuned":
    tune_gc()
runs = []
gc.callbacks.append(lambda phase, info: phase == "start" and runs.append(info["generation"]))
kept = [{"product": i} for i in range(20_000)]  # in-flight state: alive, not garbage
young_runs = len(runs)

class Node:
    pass

a, b = Node(), Node()
a.other, b.other = b, a  # a cycle only the collector can free
del a, b
print(json.dumps({"collections": young_runs, "frozen": gc.get_freeze_count(),
                  "cycle_freed": gc.collect() > 0}))
"""


def collections_while_allocating(mode: str) -> dict[str, Any]:
    return run_script(SCRIPT, mode)


def test_collections_leave_startup_objects_alone_and_run_rarely() -> None:
    control = collections_while_allocating("default")
    tuned = collections_while_allocating("tuned")

    assert control["collections"] >= 20, "the control no longer shows the problem"
    assert control["frozen"] == 0
    assert tuned["collections"] == 0
    assert tuned["frozen"] > 10_000  # the imports are out of every later collection


def test_garbage_in_cycles_is_still_collected() -> None:
    assert collections_while_allocating("tuned")["cycle_freed"] is True
