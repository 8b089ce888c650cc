"""``rllib-project serve SOURCE``: advice over HTTP, on Ray Serve.

Endpoints (JSON; see :mod:`rllib_project.readings` for what a bad request gets back):

=========================  ================================================================
``POST /recommend``        one reading ``{"<state>": 947.1, "<control>": ..., ...}`` -> the
                           advice ``recommend --json`` prints for it; on a lagging plant
                           with ``"history": [earlier readings]`` the settings in flight
                           and the disturbance estimate come from them
``POST /recommend/batch``  a list of readings (at most ``BATCH_LIMIT``) -> a list of advice
``GET /policy``            algorithm, action mode, dataset sha256, export format, controls,
                           band, data-support threshold
``GET /health``            ``{"status": "ok"}`` once a replica answers (never needs a token)
=========================  ================================================================

How it maps onto Ray Serve:

* one deployment, :class:`AdviceService`, with a FastAPI ingress (``@serve.ingress``);
  ``--replicas N`` replicas share the CPUs of the cluster (at most one CPU each);
* single readings go through ``@serve.batch``: concurrent requests on a replica are
  advised together, one vectorised roll-out (:func:`rllib_project.recommendation.advise`)
  instead of one per request (readings arriving during one batch form the next);
* the replicas load an *export* (:func:`rllib_project.policy.load_policy`): numpy and
  torch, no checkpoint is unpickled on the served path. The export's files travel to
  the replicas as bytes with their checksums, so replicas on other nodes need no shared
  folder, and each replica verifies the checksums again before loading;
* ``serve.start(http_options={"host": ..., "port": ...})`` binds the HTTP proxy to
  127.0.0.1 by default (``--ingress haproxy``: Ray's HAProxy ingress instead, see
  :mod:`rllib_project.ingress`); a Ray instance started here is kept on loopback as
  well, with token authentication on (:func:`rllib_project.tuning.prepare_ray_environment`);
* ``--token-file``: requests other than ``/health`` need ``Authorization: Bearer
  <token>``; the replicas hold only the token's sha256 and compare in constant time.

The command stays in the foreground until Ctrl-C (or SIGTERM), then removes what it
started: the application (on a cluster given by ``--address``), or Serve and the local
Ray instance, and a temporary export.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the route handlers'
# annotations (``request: Request``) at runtime, and Serve's ingress wrapping hides the
# module globals that string annotations would be resolved in.
import contextlib
import gc
import hashlib
import hmac
import json
import math
import shutil
import signal
import socket
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from ray import serve

from env.errors import InputError
from rllib_project.policy import CHECKSUM_FILE, HASHED_FILES, ExportedPolicy, load_policy
from rllib_project.readings import (
    BATCH_LIMIT,
    HISTORY_LIMIT,
    Reading,
    RequestError,
    parse_batch,
    parse_reading,
)

APP_NAME = "plant-advice"
MAX_BATCH_SIZE = 64
"""Concurrent single readings advised together on one replica."""
BATCH_WAIT_S = 0.0
"""How long a reading waits for others to join its batch: not at all. Readings that
arrive while a batch is being advised queue up and form the next batch, so batches grow
with the load by themselves, and a lone reading is not delayed."""
MAX_ONGOING_REQUESTS = 256
"""Requests a replica accepts at once (Serve's default of 5 would starve the batching)."""
TOKEN_HEADER = "authorization"
GC_THRESHOLD = 50_000
"""Allocations between young-generation collections in a replica (Python's default: 700)."""

DEPLOYMENT_OPTIONS: dict[str, Any] = {
    "max_ongoing_requests": MAX_ONGOING_REQUESTS,
    "health_check_period_s": 10,
    # One log line per request cost more CPU than the advice itself; errors and
    # replica events are still logged (under the Ray session's logs/serve/).
    "logging_config": {"enable_access_log": False},
}
"""The deployment's Serve settings (also those of ``scripts/serve_floor.py``)."""

api = FastAPI(title="Plant advice", docs_url=None, redoc_url=None, openapi_url=None)


@api.exception_handler(RequestError)
async def _request_error(_: Request, exc: RequestError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse({"error": exc.message}, status_code=exc.status, headers=headers)


def policy_summary(policy: ExportedPolicy) -> dict[str, Any]:
    """What ``GET /policy`` says about the served policy."""
    plant = policy.plant
    meta = policy.metadata
    return {
        "algorithm": policy.algorithm,
        "action_mode": policy.action_mode,
        "name": policy.name,
        "export_format": meta["format"],
        "dataset_sha256": meta["dataset_sha256"],
        "exported_utc": meta.get("exported_utc"),
        "state": plant.spec.state,
        "unit": plant.spec.state_unit,
        "band": list(plant.band),
        "control_names": list(plant.spec.control_names),
        "controls": [
            {"name": c.name, "step": c.step, "unit": c.unit, "lower": low, "upper": high}
            for c, low, high in zip(
                plant.spec.controls, plant.lower.tolist(), plant.upper.tolist(), strict=True
            )
        ],
        "horizon": plant.settings.horizon,
        "support": {
            "threshold": policy.support.threshold,
            "neighbours": policy.support.neighbours,
            "quantile": policy.support.quantile,
            "rows": len(policy.support.rows),
        },
        "batch_limit": BATCH_LIMIT,
        "history": {
            # what a reading's "history" gives on this plant (rllib_project.readings)
            "used": plant.history_informs,
            "dead_time": plant.dead_time,
            "disturbance_observer": plant.observer_active,
            "limit": HISTORY_LIMIT,
        },
    }


def read_export(folder: Path) -> dict[str, bytes]:
    """The export's files, checked by loading them once here (refuses a tampered copy)."""
    load_policy(folder)
    return {name: (folder / name).read_bytes() for name in (*HASHED_FILES, CHECKSUM_FILE)}


@contextlib.contextmanager
def _materialised(files: dict[str, bytes]) -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="plant-policy-"))
    try:
        for name, data in files.items():
            (folder / name).write_bytes(data)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _json_response(data: Any) -> Response:
    """Serialised here: FastAPI's generic encoder walks every value and costs more than
    the advice itself; the advice holds only str, float, int, bool, None, list, dict."""
    return Response(json.dumps(data, allow_nan=False), media_type="application/json")


# Serve serialises the decorated class when the module is imported: everything it uses
# must be defined above this line.
@serve.deployment(**DEPLOYMENT_OPTIONS)
@serve.ingress(api)
class AdviceService:
    """One replica: an exported policy behind the endpoints of the module docstring."""

    def __init__(self, files: dict[str, bytes], token_sha256: str | None) -> None:
        import torch

        torch.set_num_threads(1)  # small network, many small batches: threads only compete
        # Each request allocates a few hundred small objects (parsed JSON, advice dicts):
        # with Python's default threshold (700) the collector runs every few requests.
        # Measured at 32 clients (haproxy ingress, shared 2-core machine, 5 alternating
        # pairs of runs): 1,000 vs 710 requests/s on average, faster in 4 of the 5 pairs.
        gc.set_threshold(GC_THRESHOLD, 100, 100)
        with _materialised(files) as folder:
            self.policy = load_policy(folder)
        self.advisor = self.policy.advisor
        self.spec = self.policy.plant.spec
        self.summary = policy_summary(self.policy)
        self.token_sha256 = token_sha256
        self._probe = self.policy.plant.observe(
            self.policy.plant.band_mid, (self.policy.plant.lower + self.policy.plant.upper) / 2
        )[None]

    def check_health(self) -> None:
        """Serve's periodic replica check: the network still gives valid actions."""
        action = self.policy.act(self._probe)
        if not np.all(np.isfinite(action)):
            raise RuntimeError("policy network returns non-finite actions")

    def _authorise(self, request: Request) -> None:
        if self.token_sha256 is None:
            return
        scheme, _, token = request.headers.get(TOKEN_HEADER, "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise RequestError(401, "authorization", "bearer token required")
        presented = hashlib.sha256(token.strip().encode()).hexdigest()
        if not hmac.compare_digest(presented, self.token_sha256):
            raise RequestError(401, "authorization", "token not accepted")

    @api.get("/health")
    async def health(self) -> dict[str, Any]:
        return {"status": "ok", "policy": self.policy.name}

    @api.get("/policy")
    async def policy_info(self, request: Request) -> dict[str, Any]:
        self._authorise(request)
        return self.summary

    @api.post("/recommend")
    async def recommend(self, request: Request) -> Response:
        self._authorise(request)
        reading = parse_reading(await request.body(), self.spec)
        return _json_response(await self._advise_together(reading))

    @api.post("/recommend/batch")
    async def recommend_batch(self, request: Request) -> Response:
        self._authorise(request)
        batch = parse_batch(await request.body(), self.spec)
        advice = self.advisor.advise_with_histories(
            batch.temperatures, batch.controls, batch.histories
        )
        return _json_response([advice.recommendation(i).to_dict() for i in range(len(advice))])

    @serve.batch(max_batch_size=MAX_BATCH_SIZE, batch_wait_timeout_s=BATCH_WAIT_S)
    async def _advise_together(self, readings: list[Reading]) -> list[dict[str, Any]]:
        temperatures = np.array([reading.temperature for reading in readings])
        controls = np.stack([reading.controls for reading in readings])
        advice = self.advisor.advise_with_histories(
            temperatures, controls, [reading.history for reading in readings]
        )
        return [advice.recommendation(i).to_dict() for i in range(len(advice))]


# --------------------------------------------------------------------------- command


@dataclass(frozen=True)
class ServeOptions:
    """How ``rllib-project serve`` runs (its command-line flags)."""

    host: str = "127.0.0.1"
    port: int = 8000
    replicas: int = 1
    token_file: Path | None = None
    address: str | None = None
    """A running Ray cluster to deploy on; default: start a local instance here."""
    ingress: str = "proxy"
    """See :mod:`rllib_project.ingress` (set up before Ray starts)."""


def read_token(path: Path) -> str:
    """The bearer token: the file's first line (a token file holds nothing else)."""
    if not path.is_file():
        raise InputError(path, "token file not found")
    try:
        token = path.read_text(encoding="utf-8-sig").strip()  # an editor's BOM is no token
    except UnicodeDecodeError as exc:
        raise InputError(path, "token file is not UTF-8 text") from exc
    if not token or any(c.isspace() for c in token):
        raise InputError(path, "token file must hold one token without spaces")
    return token


def _check_port_free(host: str, port: int) -> None:
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
            sock.bind((host, port))
    except OSError as exc:
        raise InputError("--port", f"cannot listen on {host}:{port} ({exc.strerror})") from None


def _cpus_per_replica(replicas: int) -> float:
    """At most one CPU per replica, less when the cluster has fewer CPUs than replicas
    (Serve's default of one each would leave the extra replicas pending forever)."""
    import ray

    cpus = float(ray.cluster_resources().get("CPU", 1.0))
    return min(1.0, math.floor(100 * cpus / replicas) / 100)


def _start_ray(address: str | None) -> None:
    """Connect to ``address``, or start a Ray instance of our own.

    ``ray.init()`` without an address joins the newest cluster that ``ray start``
    left on this machine (``/tmp/ray/ray_current_cluster``); the service would then be
    deployed onto somebody else's cluster. ``address="local"`` always starts a new one,
    bound to 127.0.0.1 (see :func:`rllib_project.tuning.prepare_ray_environment`).
    """
    import ray

    from rllib_project.tuning import prepare_ray_environment

    prepare_ray_environment(address)
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(address="local", include_dashboard=False, log_to_driver=False)


def _wait_for_stop() -> None:
    """Block until SIGINT or SIGTERM (the handlers only set an event)."""
    stop = threading.Event()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, lambda *_: stop.set())
    try:
        stop.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def serve_policy(export: Path, options: ServeOptions, say: Any = print) -> None:
    """Run the service for an export folder until Ctrl-C (see module docstring)."""
    files = read_export(export)
    token = None if options.token_file is None else read_token(options.token_file)
    token_sha256 = None if token is None else hashlib.sha256(token.encode()).hexdigest()
    run_deployment(AdviceService, (files, token_sha256), options, say)


def run_deployment(
    deployment: Any, init_args: tuple[Any, ...], options: ServeOptions, say: Any = print
) -> None:
    """Start Ray and Serve as ``options`` say, run ``deployment(*init_args)`` as the
    application until Ctrl-C, then remove what was started. Shared with the benchmark's
    floor (``scripts/serve_floor.py``), so that both are served the same way."""
    if options.replicas < 1:
        raise InputError("--replicas", f"must be >= 1, got {options.replicas}")
    if not 0 < options.port < 65536:
        raise InputError("--port", f"must be a TCP port, got {options.port}")
    _check_port_free(options.host, options.port)
    import ray

    say(f"starting Ray ({options.address or 'local instance on 127.0.0.1'}) ...")
    _start_ray(options.address)
    try:
        serve.start(
            http_options={"host": options.host, "port": options.port},
            proxy_location="HeadOnly",
        )
        cpus = _cpus_per_replica(options.replicas)
        say(f"starting {options.replicas} replica(s) of {APP_NAME} ({cpus:g} CPU each) ...")
        application = deployment.options(
            num_replicas=options.replicas, ray_actor_options={"num_cpus": cpus}
        ).bind(*init_args)
        serve.run(application, name=APP_NAME, route_prefix="/")
        auth = "bearer token required" if options.token_file else "no token"
        say(
            f"listening on http://{options.host}:{options.port} ({auth}; {options.ingress} "
            "ingress): POST /recommend, "
            "POST /recommend/batch, GET /policy, GET /health; Ctrl-C to stop"
        )
        _wait_for_stop()
        say("stopping ...")
    finally:
        if options.address:
            with contextlib.suppress(Exception):
                serve.delete(APP_NAME)
        else:
            with contextlib.suppress(Exception):
                serve.shutdown()
            ray.shutdown()
    say("stopped")
