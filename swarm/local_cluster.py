"""A throwaway `ray start --head` cluster: free ports, its own temp dir, its own processes.

Tests and the chaos run use it to own a cluster they can crash and restart.

`ray start` runs in a new session, so every process of the cluster (GCS,
raylet, dashboard, workers) shares one process group; `kill()` SIGKILLs that
group, which is what `ray stop --force` does to a cluster, without touching
any other Ray on the machine. Commands of the swarm run as subprocesses with
`RAY_ADDRESS` pointing at the cluster.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
RAY = Path(sys.executable).with_name("ray")


def free_ports(count: int) -> list[int]:
    """`count` distinct ports free on 127.0.0.1 now. They are bound all at once: one at a
    time, the OS may hand a port out again as soon as the socket that held it closes."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]


def free_port() -> int:
    [port] = free_ports(1)
    return port


class LocalCluster:
    def __init__(self, temp_dir: Path, num_cpus: int = 2) -> None:
        self.temp_dir = temp_dir
        self.num_cpus = num_cpus
        self.address = ""
        self.dashboard_port = 0
        self.metrics_port = 0
        self._pgid: int | None = None

    def start(self) -> LocalCluster:
        port, self.dashboard_port, self.metrics_port, client, agent, agent_grpc, env_agent = (
            free_ports(7)
        )
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        command = [
            str(RAY), "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1",
            f"--num-cpus={self.num_cpus}", f"--temp-dir={self.temp_dir}",
            "--dashboard-host=127.0.0.1", f"--dashboard-port={self.dashboard_port}",
            f"--metrics-export-port={self.metrics_port}",
            f"--ray-client-server-port={client}",
            f"--dashboard-agent-listen-port={agent}",
            f"--dashboard-agent-grpc-port={agent_grpc}",
            f"--runtime-env-agent-port={env_agent}",
            "--disable-usage-stats",
        ]  # fmt: skip
        starter = subprocess.Popen(
            command,
            cwd=self.temp_dir,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            env=clean_env(),
        )
        self._pgid = starter.pid
        output, _ = starter.communicate(timeout=120)
        if starter.returncode != 0:
            self.kill()
            raise RuntimeError(f"ray start failed:\n{output}")
        self.address = f"127.0.0.1:{port}"
        return self

    def processes(self) -> list[psutil.Process]:
        if self._pgid is None:
            return []
        found = []
        for proc in psutil.process_iter(["pid"]):
            try:
                if os.getpgid(proc.pid) == self._pgid:
                    found.append(proc)
            except (ProcessLookupError, psutil.Error):
                continue
        return found

    def kill(self) -> None:
        """SIGKILL every process of this cluster (as `ray stop --force` does), and wait."""
        if self._pgid is None:
            return
        procs = self.processes()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._pgid, signal.SIGKILL)
        psutil.wait_procs(procs, timeout=30)
        self._pgid = None

    def run_swarm(
        self,
        *args: str,
        env: Mapping[str, str],
        cwd: Path,
        timeout: float = 300,
    ) -> subprocess.CompletedProcess[str]:
        """`python -m swarm ARGS` attached to this cluster; returns the finished process."""
        return subprocess.run(
            [sys.executable, "-m", "swarm", *args],
            cwd=cwd,
            env=self.swarm_env(env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def popen_swarm(self, *args: str, env: Mapping[str, str], cwd: Path) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "swarm", *args],
            cwd=cwd,
            env=self.swarm_env(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )

    def swarm_env(self, extra: Mapping[str, str]) -> dict[str, str]:
        return {**clean_env(), "RAY_ADDRESS": self.address, "COLUMNS": "200", **extra}


def clean_env() -> dict[str, str]:
    """The environment without the developer's keys, cluster or swarm settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SWARM_", "OPENAI_", "RAY_ADDRESS"))
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env
