"""Start and stop a throw-away local Ray cluster for tests (head + optional nodes).

Every process is started with ``ray start --block`` in its own process group under a
private ``--temp-dir``; teardown signals exactly those groups and then any process
still naming that temp dir, so Ray instances the test did not start are never touched.
Token authentication stays on (``RAY_AUTH_MODE=token``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

BIN = Path(sys.executable).parent


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports: every socket stays bound until all are chosen, so
    the system cannot hand out the same port twice."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def free_port() -> int:
    return free_ports(1)[0]


RAY_DEFAULT_AGENT_PORT = 52365
"""The dashboard agent's port of a ``ray start`` that names none (the README's head)."""


def port_taken(port: int) -> bool:
    """Whether something listens on ``port`` of any interface (Ray's agents bind all)."""
    with socket.socket() as sock:
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return True
    return False


def ray_env() -> dict[str, str]:
    """This process's environment for Ray CLIs, with token auth on. PATH is left as it
    is: every command names its interpreter, as the README's commands do."""
    env = dict(os.environ)
    env["RAY_AUTH_MODE"] = "token"
    env.pop("RAY_ADDRESS", None)
    env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)  # nodes must be able to join
    return env


STOP_GRACE_S = 3.0
"""How long a stopped test cluster's processes get to exit on SIGTERM before SIGKILL."""

AGENT_PORTS = 5
"""Ports :func:`node_agent_ports` takes."""


def node_agent_ports(ports: list[int]) -> list[str]:
    """``ray start`` options giving a node's own agents the free ``ports``: Ray's fixed
    defaults (52365 for the dashboard agent, ...) collide when several nodes or test
    clusters share one machine, and a node whose agent cannot bind takes no jobs ("No
    available agent to submit job")."""
    listen, grpc, runtime_env, metrics, client = ports
    return [
        f"--dashboard-agent-listen-port={listen}",
        f"--dashboard-agent-grpc-port={grpc}",
        f"--runtime-env-agent-port={runtime_env}",
        f"--metrics-export-port={metrics}",
        f"--ray-client-server-port={client}",
        # workers on any free port: two raylets of one machine each hand out ports of
        # Ray's default range 10002-19999 on their own, a port checked free by one may
        # be bound by the other's worker before its own binds (Ray's test clusters do
        # the same)
        "--min-worker-port=0",
        "--max-worker-port=0",
    ]


_READY_SCRIPT = """
import sys
import ray
from ray._private import ray_constants
from ray.dashboard.consts import DASHBOARD_AGENT_ADDR_NODE_ID_PREFIX
from ray.experimental.internal_kv import _internal_kv_get

ray.init(address=sys.argv[1], log_to_driver=False)
alive = sum(1 for node in ray.nodes() if node["Alive"])
head = _internal_kv_get(ray_constants.KV_HEAD_NODE_ID_KEY, namespace=ray_constants.KV_NAMESPACE_JOB)
key = f"{DASHBOARD_AGENT_ADDR_NODE_ID_PREFIX}{head.decode()}" if head else None
agent = key and _internal_kv_get(key, namespace=ray_constants.KV_NAMESPACE_DASHBOARD)
print(alive, "agent" if agent else "no-agent")
"""
"""Prints the number of alive nodes and whether the head's job agent has registered."""


@dataclass
class LocalCluster:
    temp_dir: Path
    gcs_port: int
    dashboard_port: int
    head_agent_ports: list[int]
    """Chosen with the two ports above in one :func:`free_ports` call (distinct)."""
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.gcs_port}"

    @property
    def dashboard(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def _start(self, args: list[str], agent_ports: list[int]) -> None:
        log = open(self.temp_dir / f"start_{len(self.processes)}.log", "w")  # noqa: SIM115
        self.processes.append(
            subprocess.Popen(
                [str(BIN / "ray"), "start", "--block", *args, *node_agent_ports(agent_ports)],
                env=ray_env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )

    def start_head(self, cpus: int) -> None:
        self._start(
            [
                "--head",
                "--node-ip-address=127.0.0.1",
                f"--port={self.gcs_port}",
                f"--num-cpus={cpus}",
                "--dashboard-host=127.0.0.1",
                f"--dashboard-port={self.dashboard_port}",
                f"--temp-dir={self.temp_dir}",
                "--include-dashboard=true",
            ],
            self.head_agent_ports,
        )

    def add_node(self, cpus: int) -> None:
        """A node with its own temp dir, as the README tells a person to start a second
        node on one machine: nodes sharing the head's session folder share its runtime
        env cache, and the other node's agent deletes the job's working_dir under the
        running driver once it no longer uses it itself (the driver's next subprocess
        then fails with FileNotFoundError on its cwd)."""
        node_dir = self.temp_dir / f"node{len(self.processes)}"  # short: socket paths
        self._start(
            [
                f"--address={self.address}",
                "--node-ip-address=127.0.0.1",
                f"--num-cpus={cpus}",
                f"--temp-dir={node_dir}",
            ],
            free_ports(AGENT_PORTS),  # the head's are bound by now
        )

    def wait_for_nodes(self, count: int, timeout: float = 300.0) -> None:
        """Until ``count`` nodes are alive and the head's job agent has registered.

        The head's dashboard waits only 10 s for its job agent when a job is submitted
        ("No available agent to submit job"); on a busy machine the agent takes longer
        to start, so the cluster counts as ready once the agent's address is in the GCS.
        """
        deadline = time.time() + timeout
        last = "no answer yet"
        while time.time() < deadline:
            try:
                result = subprocess.run(
                    [sys.executable, "-c", _READY_SCRIPT, self.address],
                    env=ray_env(),
                    capture_output=True,
                    text=True,
                    timeout=max(deadline - time.time(), 1.0),
                )
            except subprocess.TimeoutExpired:
                last = "the ready check itself did not answer in time"
                break
            lines = result.stdout.strip().splitlines()
            if result.returncode == 0 and lines:
                alive, agent = lines[-1].split()
                if int(alive) >= count and agent == "agent":
                    return
            last = f"{result.stdout.strip()} {result.stderr.strip()[-1500:]}"
            time.sleep(2.0)
        logs = "\n".join(p.read_text()[-2000:] for p in sorted(self.temp_dir.glob("start_*.log")))
        agent_logs = "\n".join(
            p.read_text(errors="replace")[-2000:]
            for p in sorted(self.temp_dir.glob("**/logs/dashboard_agent.log"))
        )
        raise AssertionError(
            f"cluster did not reach {count} node(s) in {timeout} s; last check: {last}\n"
            f"{logs}\n--- dashboard agents:\n{agent_logs}"
        )

    def stop(self) -> None:
        """SIGTERM, a short grace, then SIGKILL for what is left. A node's graceful
        shutdown takes about 30 s (its GCS and raylet wait on each other); this cluster
        and its temp dir are thrown away, so nothing is lost by not waiting (Ray's own
        test clusters kill their processes outright)."""
        for process in reversed(self.processes):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.time() + STOP_GRACE_S
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(deadline - time.time(), 0.1))
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        self._kill_leftovers()
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def _kill_leftovers(self) -> None:
        kill_processes(
            {p.pid for p in self.processes}, (str(self.temp_dir), f"127.0.0.1:{self.gcs_port}")
        )


def find_processes(groups: set[int], marks: tuple[str, ...]) -> list[int]:
    """Processes in ``groups`` or whose command line or environment names one of
    ``marks`` (a private temp dir, a port): only what a test started."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environ = (proc / "environ").read_bytes().decode(errors="replace")
            group = os.getpgid(int(proc.name))
        except (OSError, ProcessLookupError):
            continue
        if group in groups or any(mark in cmdline or mark in environ for mark in marks):
            found.append(int(proc.name))
    return found


def kill_processes(groups: set[int], marks: tuple[str, ...]) -> None:
    """SIGKILL every process :func:`find_processes` finds."""
    for pid in find_processes(groups, marks):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def private_ray_tmpdir() -> Iterator[dict[str, str]]:
    """Environment for a driver whose own Ray instance lives under a private temp dir,
    so that everything it starts can be found and stopped afterwards."""
    temp_dir = tempfile.mkdtemp(prefix="rt", dir="/tmp")
    env = dict(os.environ, RAY_TMPDIR=temp_dir)
    env.pop("RAY_ADDRESS", None)
    try:
        yield env
    finally:
        kill_processes(set(), (f"RAY_TMPDIR={temp_dir}", temp_dir))
        shutil.rmtree(temp_dir, ignore_errors=True)


def ensure_auth_token() -> None:
    """Create ``~/.ray/auth_token`` if missing: ``ray start`` with token auth refuses to
    start without one (only ``ray.init`` creates it on its own)."""
    subprocess.run(
        [str(BIN / "ray"), "get-auth-token", "--generate"],
        env=ray_env(),
        check=True,
        capture_output=True,
        timeout=120,
    )


@contextlib.contextmanager
def local_cluster(head_cpus: int, extra_nodes: tuple[int, ...] = ()) -> Iterator[LocalCluster]:
    temp_dir = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # short: socket paths
    gcs_port, dashboard_port, *agent_ports = free_ports(2 + AGENT_PORTS)
    cluster = LocalCluster(temp_dir, gcs_port, dashboard_port, agent_ports)
    ensure_auth_token()
    try:
        cluster.start_head(head_cpus)
        cluster.wait_for_nodes(1)
        for cpus in extra_nodes:
            cluster.add_node(cpus)
        cluster.wait_for_nodes(1 + len(extra_nodes))
        yield cluster
    finally:
        cluster.stop()
