"""Serve a trained model over HTTP with Ray Serve: autoscaled replicas, dynamic batching, load
shedding (503 when the queue is full) and a timeout on every request. Runs in the foreground until
Ctrl-C (--detach: deploy on the cluster at --address and return).

  POST /v1/classify   an image as the body (Content-Type image/png, image/jpeg, ...), several as
                      multipart files, or JSON {"images": ["<base64>", ...]}; ?top_k=N
  GET  /v1/model      classes, image geometry, parameters and model id
  GET  /healthz       200 once the model is loaded; OpenAPI at /docs

The same settings are the `args` of dlcls.ray.serve:build_app in a Serve config file or a KubeRay
RayService; there, a new model_uri in the deployment's user_config is swapped in without a restart.

example:
  dlcls serve model.hdl --port 8000 --max-replicas 4
  curl -H 'Content-Type: image/png' --data-binary @part.png 'http://127.0.0.1:8000/v1/classify?top_k=3'
"""

import argparse
import sys
import threading

from ..ray.serve_config import SETTINGS, settings
from .common import add_ray_arguments

_MODEL = "model_uri"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(_MODEL, metavar="MODEL_URI", help=SETTINGS[_MODEL].help)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface; "
                        "default: %(default)s)")
    parser.add_argument("--port", type=int, default=8000, help="HTTP port (default: %(default)s)")
    parser.add_argument("--name", default="dlcls", help="Serve application name (default: %(default)s)")
    parser.add_argument("--route-prefix", default="/", help="URL path the API lives under (default: %(default)s)")
    parser.add_argument("--detach", action="store_true",
                        help="with --address: leave the application running on the cluster and return")
    for s in SETTINGS.values():
        if s.name == _MODEL:
            continue
        flag, default = "--" + s.name.replace("_", "-"), "" if s.default is None else " (default: %(default)s)"
        if s.kind is bool:
            parser.add_argument(flag, action="store_true", help=s.help)
        else:
            parser.add_argument(flag, type=s.kind, default=s.default, help=s.help + default)
    add_ray_arguments(parser)


def run(args: argparse.Namespace) -> int:
    if args.detach and not args.address:
        print("dlcls serve: error: --detach needs --address (a local Ray ends with this command)", file=sys.stderr)
        return 2
    values = settings({name: getattr(args, name) for name in SETTINGS})  # bad values fail before Ray starts
    from ..ray.serve import start, stop
    from ..ray.session import ray_session

    with ray_session(args.address, args.num_cpus):
        try:
            url = start(values, args.host, args.port, args.name, args.route_prefix)
        except RuntimeError as e:
            print(f"dlcls serve: error: {e}", file=sys.stderr)
            return 1
        print(f"serving {args.model_uri} at {url}/v1/classify (API docs: {url}/docs)", flush=True)
        if args.detach:
            print(f"the application {args.name!r} keeps running on the cluster; remove it with "
                  f"ray.serve.delete({args.name!r}) from a driver there")
            return 0
        print("press Ctrl-C to stop", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            stop(args.name)
            print("stopped")
    return 0
