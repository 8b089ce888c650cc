"""The floor of ``scripts/bench_serve.py``: the least a Serve endpoint does on this machine.

How to run (``bench_serve.py`` starts it as it starts ``rllib-project serve``)::

    .venv/bin/python scripts/serve_floor.py --port 8000 [--ingress proxy|haproxy] [--replicas N]

The same set-up as ``rllib-project serve`` (the ingress preparation, Ray on loopback
with token authentication, the deployment's Serve settings, a FastAPI ingress, the
replicas' CPUs; :func:`rllib_project.serving.run_deployment`), but ``POST /recommend``
reads nothing and answers a constant small JSON body: no parsing, no advice, no
batching. What the service costs beyond this is ours; the rest is Ray Serve, HTTP and
the load generator sharing the cores.
"""

# No ``from __future__ import annotations``: FastAPI reads the handlers' annotations.
import argparse
import gc
import shutil
import tempfile
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import Response
from ray import serve

from rllib_project.ingress import INGRESS_KINDS, prepare_ingress
from rllib_project.serving import DEPLOYMENT_OPTIONS, GC_THRESHOLD, ServeOptions, run_deployment
from rllib_project.tuning import prepare_ray_environment

ANSWER = b'{"advice": "hold"}'

api = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)


@serve.deployment(**DEPLOYMENT_OPTIONS)
@serve.ingress(api)
class Floor:
    """A replica that answers without looking at the request."""

    def __init__(self) -> None:
        gc.set_threshold(GC_THRESHOLD, 100, 100)  # as the service's replicas

    @api.get("/health")
    async def health(self) -> dict[str, str]:
        return {"status": "ok"}

    @api.post("/recommend")
    async def recommend(self) -> Response:
        return Response(ANSWER, media_type="application/json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ingress", choices=INGRESS_KINDS, default="proxy")
    parser.add_argument("--replicas", type=int, default=1)
    args = parser.parse_args()
    prepare_ray_environment(None)
    private = Path(tempfile.mkdtemp(prefix="rps", dir="/tmp"))  # short: see rllib_project.cli
    try:
        prepare_ingress(args.ingress, None, private)
        options = ServeOptions(port=args.port, replicas=args.replicas, ingress=args.ingress)
        run_deployment(Floor, (), options, say=lambda line: print(line, flush=True))
    finally:
        shutil.rmtree(private, ignore_errors=True)


if __name__ == "__main__":
    main()
