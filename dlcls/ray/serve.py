"""Ray Serve: the classifier as an autoscaled HTTP service with dynamic batching.

    POST /v1/classify   one image (raw body), several (multipart files) or JSON with base64 images
                        -> per image the predicted class, its confidence and the top-k classes
    GET  /v1/model      classes, image geometry, parameters, model id and the serving settings
    GET  /healthz       200 once the model is loaded
    /docs               OpenAPI

`build_app(args)` is the application builder (`import_path: dlcls.ray.serve:build_app` in a Serve
config file or a KubeRay RayService); `args` are the settings of serve_config.SETTINGS.

A replica decodes and preprocesses each image with the function behind the Ray batch jobs and
preprocess_dl_classifier_images (core.preprocess.encoded_to_network_bytes), in a thread so that
the event loop keeps taking requests, then hands it to a @serve.batch method that runs
core.predict.predict on up to max_batch_size images at once: the confidences are those of
apply_dl_classifier. Images wait for the predictor to be free before they join a batch, so that
under load a batch holds what gathered during the previous forward pass (measured: 1.5x the
throughput of plain @serve.batch at 32 clients, AlexNet 128x128 on 2 CPUs).

The model comes from the user_config: a new model_uri there is loaded by the running replicas
(reconfigure) while the old model answers, then swapped in; each request is answered by one
model, named in its answer.

Overload: a replica takes max_ongoing_requests at once; Serve's proxy queues at most
max_queued_requests more and answers 503 beyond that, so latency stays bounded.
"""

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache

import numpy as np
import torch
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from ray import serve
from ray.serve.exceptions import RayServeException
from ray.serve.metrics import Counter, Histogram
from torch import nn

from .. import errors
from ..core import images as img
from ..core.params import TABLE
from ..core.predict import predict
from ..core.preprocess import encoded_to_network_bytes, to_network_range
from . import serve_http as http
from .batch import Model
from .data import Geometry
from .serve_config import USER_CONFIG, deployment_options, replica_settings, settings

logger = logging.getLogger(__name__)
DEPLOYMENT = "Classifier"
ROUTES = ("/v1/classify", "/v1/model", "/healthz")


@dataclass(frozen=True)
class ServedModel:
    """A model file loaded for serving, with what its answers need."""

    uri: str
    id: str
    classes: list[str]
    params: dict
    geometry: Geometry
    network: nn.Module
    device: torch.device

    @classmethod
    def read(cls, uri: str, use_gpu: bool, contrast_normalization: bool, max_pixels: int) -> "ServedModel":
        try:
            model = Model.read(uri)
        except errors.ModelFileNotFoundError:
            raise errors.ModelFileNotFoundError(f"no model file at {uri!r}: serve a trained model file (from dlcls "
                                                "train or write_dl_classifier)") from None
        handle = model.handle
        handle.set_param("runtime", "gpu" if use_gpu else "cpu")  # Ray shows a GPU replica only its own GPUs
        params = {name: handle.get_param(name) for name, p in TABLE.items() if p.gettable}
        geometry = Geometry.of(handle, contrast_normalization=contrast_normalization, max_pixels=max_pixels)
        return cls(model.uri, model.id, params["classes"], params, geometry, handle.network, handle.device)

    def prepare(self, data: bytes) -> np.ndarray:
        """Image file bytes -> uint8 network bytes, as the batch jobs and the local procedure do."""
        g = self.geometry
        return encoded_to_network_bytes(data, g.width, g.height, g.channels, g.contrast_normalization, g.max_pixels,
                                        g.jpeg_draft)

    def confidences(self, images: np.ndarray) -> np.ndarray:
        """uint8 N x H x W x C -> N x classes, as apply_dl_classifier computes them."""
        g = self.geometry
        return predict(self.network, img.to_tensor(to_network_range(images, g.range_min, g.range_max)), self.device)


def confidences_by_model(items: list[tuple[ServedModel, np.ndarray]]) -> list[np.ndarray]:
    """One forward pass per model among the items (two only while a swap is under way)."""
    out: list[np.ndarray] = [None] * len(items)
    for model in {id(m): m for m, _ in items}.values():
        picks = [i for i, (m, _) in enumerate(items) if m is model]
        for i, row in zip(picks, model.confidences(np.stack([items[i][1] for i in picks]))):
            out[i] = row
    return out


class Metrics:
    """Request metrics, exported by Ray's metrics agent (Prometheus names get a ray_ prefix)."""

    def __init__(self):
        self.requests = Counter("dlcls_serve_requests", "HTTP requests answered", ("route", "status"))
        self.latency = Histogram("dlcls_serve_request_latency_ms", "time to answer a request",
                                 [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000], ("route",))
        self.errors = Counter("dlcls_serve_errors", "requests answered with an error, by kind", ("kind",))
        self.images = Counter("dlcls_serve_images", "images classified")
        self.batch_size = Histogram("dlcls_serve_batch_size", "images per forward pass", [1, 2, 4, 8, 16, 32, 64, 128])


@cache
def metrics() -> Metrics:
    """Made in the replica on first use: a metric belongs to the process that records it."""
    return Metrics()


app = FastAPI(title="dlcls classifier", description="HALCON-style image classification (dlcls) on Ray Serve.")


class _Observe:
    """Counts every request by route and status and times it (plain ASGI, which costs less per
    request than Starlette's BaseHTTPMiddleware)."""

    def __init__(self, asgi):
        self.asgi = asgi

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.asgi(scope, receive, send)
        started, status = time.perf_counter(), 500

        async def send_and_note(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.asgi(scope, receive, send_and_note)
        finally:
            route = getattr(scope.get("route"), "path", None)
            route = route if route in ROUTES else "other"
            metrics().requests.inc(tags={"route": route, "status": str(status)})
            metrics().latency.observe((time.perf_counter() - started) * 1000, tags={"route": route})


app.add_middleware(_Observe)


@app.exception_handler(http.RequestError)
async def _request_error(request: Request, error: http.RequestError) -> JSONResponse:
    metrics().errors.inc(tags={"kind": error.kind})
    return error.response()


@app.exception_handler(RequestValidationError)
async def _bad_parameter(request: Request, error: RequestValidationError) -> JSONResponse:
    problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
    return await _request_error(request, http.RequestError(400, "bad_parameter", problems))


@app.exception_handler(Exception)
async def _internal(request: Request, error: Exception) -> JSONResponse:
    """A bug answers 500 as JSON (the replica keeps serving; Serve logs the traceback)."""
    return await _request_error(request, http.RequestError(500, "internal", "the server failed on this request; "
                                                           "see the replica's log"))


def _prepare_all(model: ServedModel, files: list[tuple[str | None, bytes]]) -> list[np.ndarray]:
    """Every file -> network bytes; the first that fails is the client's error."""
    images = []
    for index, (name, data) in enumerate(files):
        try:
            images.append(model.prepare(data))
        except (errors.ImageDecodeError, errors.ImageTypeError, errors.ChannelError) as e:
            raise http.image_error(index, name, e) from None
    return images


# Serve pickles the class as it is decorated: everything its methods use is defined above.
@serve.deployment(name=DEPLOYMENT)
@serve.ingress(app)
class Classifier:
    """A replica: one model, request limits fixed at start (`limits`: serve_config.replica_settings)."""

    def __init__(self, limits: dict):
        self.limits = limits
        self.model: ServedModel | None = None
        self.batching: dict = {}
        self.swap_error: str | None = None  # why the last model of the user_config is not the one served
        # torch always runs on this one thread: every new calling thread would start its own team
        # of OpenMP threads, fighting the others for the replica's cores.
        self.predictor = ThreadPoolExecutor(1, thread_name_prefix="dlcls-predict")
        # Serve forms a batch every batch_wait_timeout_s, busy predictor or not: requests that
        # trickle in during a forward pass would make many small batches queueing for it. They wait
        # here instead and enter together once it is free, as one full batch.
        self.predictor_idle = asyncio.Event()
        self.predictor_idle.set()

    async def reconfigure(self, user_config: dict) -> None:
        """Load the model of `user_config` (serve_config.USER_CONFIG) beside the one answering, then
        swap: requests are answered throughout. A replica that serves a model keeps it when the
        new one cannot be loaded (Serve would otherwise stop it, and with it the service): the
        error is logged and shown by /v1/model as swap_error."""
        config = settings(user_config, names=USER_CONFIG, where="user_config")
        limits = self.limits
        try:
            model = await asyncio.to_thread(ServedModel.read, config["model_uri"], limits["use_gpu"],
                                            limits["contrast_normalization"], limits["max_pixels"])
        except Exception as e:
            if self.model is None:
                raise  # a replica without a model must not start
            self.swap_error = f"{type(e).__name__}: {e}"
            logger.error("kept %s: %s", self.model.uri, self.swap_error)
            return
        self.batching = {"max_batch_size": config["max_batch_size"] or model.params["batch_size"],
                         "batch_wait_timeout_s": config["batch_wait_timeout_s"]}
        self._confidences.set_max_batch_size(self.batching["max_batch_size"])
        self._confidences.set_batch_wait_timeout_s(self.batching["batch_wait_timeout_s"])
        self.model, self.swap_error = model, None
        logger.info("serving %s (id %s)", model.uri, model.id)

    def check_health(self) -> None:
        if self.model is None:
            raise RuntimeError("no model loaded")

    @app.post("/v1/classify", response_model=http.ClassifyResponse, responses=http.ERROR_RESPONSES,
              openapi_extra={"requestBody": http.REQUEST_BODY})
    async def classify(self, request: Request,
                       top_k: int | None = Query(None, ge=1, description="classes listed per image")) -> JSONResponse:
        """Classify the images in the body: a raw image file, multipart files, or JSON with base64."""
        model = self.model  # the whole request is answered by the model current when it came in
        timeout = self.limits["request_timeout_s"]
        try:
            confidences, names = await asyncio.wait_for(self._classify(request, model), timeout)
        except asyncio.TimeoutError:
            raise http.RequestError(504, "timeout", f"the request was not answered within {timeout} s; retry, or "
                                    "send fewer images per request") from None
        # A response object skips FastAPI's validation against ClassifyResponse (documentation only).
        return JSONResponse({"model_id": model.id, "results": http.classifications(
            names, confidences, model.classes, top_k or self.limits["top_k"])})

    async def _classify(self, request: Request, model: ServedModel) -> tuple[np.ndarray, list]:
        files = await http.read_images(request, self.limits["max_body_bytes"], self.limits["max_images"])
        images = await asyncio.to_thread(_prepare_all, model, files)
        await self.predictor_idle.wait()
        rows = await asyncio.gather(*(self._confidences((model, image)) for image in images))
        metrics().images.inc(len(rows))
        return np.stack(rows), [name for name, _ in files]

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.002)  # both set from the user_config in reconfigure
    async def _confidences(self, items: list[tuple[ServedModel, np.ndarray]]) -> list[np.ndarray]:
        metrics().batch_size.observe(len(items))
        self.predictor_idle.clear()
        try:
            return await asyncio.get_running_loop().run_in_executor(self.predictor, confidences_by_model, items)
        finally:
            self.predictor_idle.set()

    @app.get("/v1/model")
    def model_info(self) -> dict:
        """The model being served and the serving settings."""
        model = self.model
        return {"model_id": model.id, "model_uri": model.uri, "classes": model.classes,
                "image_width": model.geometry.width, "image_height": model.geometry.height,
                "image_num_channels": model.geometry.channels, "image_range_min": model.geometry.range_min,
                "image_range_max": model.geometry.range_max, "params": model.params, "swap_error": self.swap_error,
                "serving": {**self.batching, **{k: v for k, v in self.limits.items() if k != "use_gpu"}}}

    @app.get("/healthz")
    def healthz(self) -> dict:
        """200 once the model is loaded."""
        self.check_health()
        return {"status": "ok", "model_id": self.model.id}


def build_app(args: dict) -> serve.Application:
    """The Serve application for `args` (serve_config.SETTINGS; model_uri required). Nothing is
    loaded here: the replicas read the model."""
    values = settings(args)
    return Classifier.options(**deployment_options(values)).bind(replica_settings(values))


def start(args: dict, host: str = "127.0.0.1", port: int = 8000, name: str = "dlcls", route_prefix: str = "/") -> str:
    """Start Serve's HTTP proxy on `host`:`port` (if Serve is not running yet) and deploy the app;
    returns its URL once the replicas answer. The proxy's timeout is request_timeout_s plus a
    grace period, so that the replica's own 504 with its JSON message normally comes first.
    Serve's progress messages are turned off: the caller prints one line with the URL. A replica
    that cannot start (no model file, say) is a RuntimeError naming the replica's own error, and
    the application is deleted rather than left retrying."""
    logging.getLogger("ray.serve").setLevel(logging.WARNING)
    application = build_app(args)
    timeout = settings(args)["request_timeout_s"] + 5
    serve.start(http_options={"host": host, "port": port, "request_timeout_s": timeout})
    try:
        serve.run(application, name=name, route_prefix=route_prefix)
    except RayServeException as e:  # refused by the controller, e.g. the route prefix is taken
        raise RuntimeError(f"the application {name!r} was not deployed: {_last_line(str(e))}") from None
    except RuntimeError:
        reason = _failure(name)
        serve.delete(name)
        raise RuntimeError(f"the application {name!r} did not start: {reason}") from None
    return f"http://{host}:{port}{route_prefix.rstrip('/')}"


def _failure(name: str) -> str:
    """The error that stopped the replicas: the end of the deployment's status message."""
    status = serve.status().applications.get(name)
    message = status.deployments[DEPLOYMENT].message if status and DEPLOYMENT in status.deployments else ""
    return _last_line(message or getattr(status, "message", "")) or "see the Serve logs of the cluster"


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def stop(name: str = "dlcls") -> None:
    """Delete the application (other applications on the cluster keep running)."""
    serve.delete(name)
