"""`tune_malloc` and `release_free_memory`: freed memory goes back to the system (glibc).

Each case runs in a fresh interpreter, so it starts from glibc's default settings.
The control shows what the setting prevents: after one large block is freed, glibc
serves later 100 KiB blocks from its heap, and a live block above them keeps the
heap from shrinking when they are freed.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest

from tests.storage.fresh_interpreter import run_script

# Both functions act on glibc's malloc and are no-ops returning False elsewhere (macOS,
# Windows), where there is no allocator setting to check. They run on Linux: CI and
# every Ray host this project targets.
pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"),
    reason="tune_malloc/release_free_memory act on glibc malloc only; runs on Linux",
)

SCRIPT = """
import ctypes, json, sys
from storage.process_memory import release_free_memory, tune_malloc

def rss_mb():
    with open("/proc/self/status") as f:
        return int(f.read().split("VmRSS:")[1].split()[0]) / 1024

mode = sys.argv[1]
tuned = tune_malloc() if mode == "tuned" else None
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
libc.memset.argtypes = (ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t)

def block(size):
    address = libc.malloc(size)
    libc.memset(address, 1, size)
    return address

size = 16 << 10 if mode == "trim" else 100 << 10  # small blocks always come from the heap
libc.free(block(4 << 20))  # one large batch, freed
before = rss_mb()
batches = [block(size) for _ in range((60 << 20) // size)]  # 60 MB of batches
pin = block(size)  # still alive above them
for address in batches:
    libc.free(address)
kept = rss_mb() - before
released = release_free_memory() if mode == "trim" else None
print(json.dumps({"tuned": tuned, "kept_mb": kept, "released": released,
                  "after_release_mb": rss_mb() - before}))
"""


def kept_after_free(mode: str) -> dict[str, Any]:
    return run_script(SCRIPT, mode)


def test_memory_of_freed_batches_goes_back_to_the_system() -> None:
    control = kept_after_free("default")
    tuned = kept_after_free("tuned")

    assert control["kept_mb"] > 40, "the control no longer shows the problem"
    assert tuned["tuned"] is True
    assert tuned["kept_mb"] < 10


def test_freed_pages_below_a_live_block_go_back_when_released() -> None:
    result = kept_after_free("trim")

    assert result["kept_mb"] > 40, "glibc gave the pages back by itself: nothing to test"
    assert result["released"] is True
    assert result["after_release_mb"] < 10
