"""Ray Serve: real HTTP requests on localhost. Every input form with parity against
apply_dl_classifier, every bad input, 32 concurrent clients, autoscaling, a killed replica, load
shedding, an app built from a Serve config file with a model swap under traffic (from S3), the
metrics, and `dlcls serve` itself."""

import base64
import hashlib
import io
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests
import yaml
from conftest import free_port
from PIL import Image

import dlcls
from dlcls.cli import main
from dlcls.ray.serve_config import deployment_options, settings

pytest.importorskip("ray.serve")
from dlcls.ray.serve import start  # noqa: E402

pytestmark = pytest.mark.usefixtures("ray_local")
CLASSES = ["good", "crack", "stain"]
LIMITS = {"max_body_bytes": 300_000, "max_images": 4, "max_pixels": 250_000}


def _encode(array: np.ndarray, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt, **options)
    return buf.getvalue()


def _images(count: int, seed: int = 0) -> list[bytes]:
    """PNG and JPEG files of several sizes, RGB and gray."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        array = rng.integers(0, 256, (30 + i % 7, 41 + i % 5, 3), dtype=np.uint8)
        out.append(_encode(array[:, :, 0] if i % 3 == 2 else array, "JPEG" if i % 2 else "PNG", quality=90))
    return out


def _write_model(path: Path, classes: list[str], seed: int) -> str:
    handle = dlcls.read_dl_classifier("compact")
    for name, value in [("classes", classes), ("image_dimensions", [32, 32, 3]), ("batch_size", 8),
                        ("runtime", "cpu")]:
        dlcls.set_dl_classifier_param(handle, name, value)
    rng = np.random.default_rng(seed)  # a few steps, so that confidences differ between images
    images = rng.normal(0, 40, (8, 32, 32, 3)).astype(np.float32)
    dlcls.train_dl_classifier_batch(images, handle, [classes[i % len(classes)] for i in range(8)])
    dlcls.write_dl_classifier(handle, str(path))
    return str(path)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve-models")
    return _write_model(root / "first.hdl", CLASSES, 1), _write_model(root / "second.hdl", ["ok", "ng"], 2)


@pytest.fixture(scope="module")
def local(models):
    """Confidences of apply_dl_classifier on preprocess_dl_classifier_images of the same bytes."""
    handle = dlcls.read_dl_classifier(models[0])

    def confidences(data: bytes) -> dict[str, float]:
        row = dlcls.apply_dl_classifier(dlcls.preprocess_dl_classifier_images(data, handle), handle).confidences[0]
        return dict(zip(CLASSES, row.tolist()))

    return confidences


@pytest.fixture(scope="module")
def service(ray_local, models):
    """The app at / (autoscaled between 1 and 2 replicas), on a free port; Serve is shut down after
    this module so that the other Ray tests get their CPUs back."""
    from ray import serve

    port = free_port()
    url = start({"model_uri": models[0], "num_cpus_per_replica": 0.25, "min_replicas": 1, "max_replicas": 2,
                 "target_ongoing_requests": 1, "upscale_delay_s": 0, "max_batch_size": 8, "batch_wait_timeout_s": 0.01,
                 "max_ongoing_requests": 16, "max_queued_requests": 64, **LIMITS}, port=port, name="test")
    yield url
    serve.shutdown()


def _replicas(ray, app: str) -> list[str]:
    return sorted(a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                  if a["name"].startswith(f"SERVE_REPLICA::{app}#"))


def _running(app: str) -> int:
    from ray import serve

    status = serve.status().applications.get(app)
    return status.deployments["Classifier"].replica_states.get("RUNNING", 0) if status else 0


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _post(url: str, data, content_type: str | None = "image/png", **kwargs) -> requests.Response:
    headers = {"Content-Type": content_type} if content_type else {}
    return requests.post(f"{url}/v1/classify", data=data, headers=headers, timeout=60, **kwargs)


def _assert_parity(result: dict, expected: dict[str, float]) -> None:
    got = dict(zip(result["top_classes"], result["top_confidences"]))
    assert set(got) == set(expected)  # top_k = all classes: every confidence is compared
    assert max(abs(got[c] - v) for c, v in expected.items()) < 1e-6
    assert result["top_confidences"] == sorted(result["top_confidences"], reverse=True)
    assert (result["predicted_class"], result["confidence"]) == (result["top_classes"][0], result["top_confidences"][0])
    assert CLASSES[result["predicted_class_index"]] == result["predicted_class"]


# -- settings (no Serve needed) ------------------------------------------------------------------

def test_settings_collect_every_problem_and_name_the_valid_ones():
    with pytest.raises(dlcls.errors.WrongParamValueError) as e:
        settings({"model": "m.hdl", "min_replicas": 3, "max_replicas": 2, "top_k": "5", "max_batch_size": 0})
    message = str(e.value)
    for part in ["unknown setting 'model'", "valid settings: model_uri, max_batch_size", "model_uri is required",
                 "top_k must be of type int, got '5'", "max_batch_size must be at least 1",
                 "min_replicas (3) is above max_replicas (2)"]:
        assert part in message
    assert settings({"model_uri": "m.hdl", "target_ongoing_requests": 3})["target_ongoing_requests"] == 3


def test_deployment_options_bound_the_autoscaler_and_put_the_model_in_the_user_config():
    options = deployment_options(settings({"model_uri": "s3://b/m.hdl", "max_replicas": 6, "num_gpus_per_replica": 1}))
    assert options["autoscaling_config"]["min_replicas"] == 1 and options["autoscaling_config"]["max_replicas"] == 6
    assert options["user_config"] == {"model_uri": "s3://b/m.hdl", "max_batch_size": None,
                                      "batch_wait_timeout_s": 0.002}
    assert options["ray_actor_options"] == {"num_cpus": 1, "num_gpus": 1}
    assert options["max_queued_requests"] > 0  # a bounded queue: overload is shed with 503


def test_importing_and_building_loads_nothing_and_starts_no_ray():
    script = ("import ray, dlcls.ray.serve as s; app = s.build_app({'model_uri': '/no/such/model.hdl'}); "
              "assert not ray.is_initialized(); print(type(app).__name__)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "Application"


# -- the app at / --------------------------------------------------------------------------------

def test_the_app_starts_with_min_replicas(service, ray_local):
    assert _running("test") == 1 and len(_replicas(ray_local, "test")) == 1


@pytest.mark.parametrize("index", [0, 1, 2], ids=["png-rgb", "jpeg-rgb", "png-gray"])
def test_raw_body_confidences_equal_apply_dl_classifier(service, local, models, index):
    data = _images(3)[index]
    response = _post(service, data, "image/jpeg" if index == 1 else "image/png", params={"top_k": 3})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_id"] == hashlib.sha256(Path(models[0]).read_bytes()).hexdigest()
    assert len(body["results"]) == 1 and body["results"][0]["index"] == 0 and body["results"][0]["name"] is None
    _assert_parity(body["results"][0], local(data))


def test_multipart_files_are_answered_in_order_with_their_names(service, local):
    images = _images(4, seed=5)
    files = [("files", (f"part-{i}.{'jpg' if i % 2 else 'png'}", data, "application/octet-stream"))
             for i, data in enumerate(images)]
    response = requests.post(f"{service}/v1/classify", files=files, params={"top_k": 3}, timeout=60)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["name"] for r in results] == [f[1][0] for f in files] and [r["index"] for r in results] == [0, 1, 2, 3]
    for result, data in zip(results, images):
        _assert_parity(result, local(data))


def test_json_base64_images_as_strings_or_named_objects(service, local):
    images = _images(2, seed=6)
    payload = {"images": [base64.b64encode(images[0]).decode(),
                          {"name": "b.jpg", "data": base64.b64encode(images[1]).decode()}]}
    response = requests.post(f"{service}/v1/classify?top_k=3", json=payload, timeout=60)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["name"] for r in results] == [None, "b.jpg"]
    for result, data in zip(results, images):
        _assert_parity(result, local(data))


def test_top_k_defaults_to_the_setting_capped_at_the_classes(service):
    data = _images(1)[0]
    assert len(_post(service, data).json()["results"][0]["top_classes"]) == 3  # default 5, three classes
    one = _post(service, data, params={"top_k": 1}).json()["results"][0]
    assert len(one["top_classes"]) == len(one["top_confidences"]) == 1


def test_model_health_and_docs(service, models):
    info = requests.get(f"{service}/v1/model", timeout=30).json()
    assert info["model_id"] == hashlib.sha256(Path(models[0]).read_bytes()).hexdigest()
    assert info["classes"] == CLASSES and info["model_uri"] == models[0]
    assert (info["image_width"], info["image_height"], info["image_num_channels"]) == (32, 32, 3)
    assert (info["image_range_min"], info["image_range_max"]) == (-127.0, 128.0)
    assert info["params"]["batch_size"] == 8 and info["params"]["classes"] == CLASSES
    assert info["serving"]["max_batch_size"] == 8 and info["serving"]["max_images"] == 4
    health = requests.get(f"{service}/healthz", timeout=30)
    assert health.status_code == 200 and health.json() == {"status": "ok", "model_id": info["model_id"]}
    assert "swagger" in requests.get(f"{service}/docs", timeout=30).text.lower()
    spec = requests.get(f"{service}/openapi.json", timeout=30).json()["paths"]["/v1/classify"]["post"]
    assert {"image/png", "multipart/form-data", "application/json"} <= set(spec["requestBody"]["content"])
    assert {"400", "413", "415", "503", "504"} <= set(spec["responses"])


def _big_png() -> bytes:
    return _encode(np.random.default_rng(0).integers(0, 256, (300, 300, 3), dtype=np.uint8), "PNG")  # ~270 kB


class Chunks:
    """A body sent in chunks, with no Content-Length (requests streams any other iterable)."""

    def __iter__(self):
        return iter([bytes(100_000)] * 4)


PNG = _images(1)[0]
BAD = {  # name: (request arguments, status, kind)
    "not an image": (dict(data=b"GIF89a? not really"), 400, "undecodable"),
    "truncated": (dict(data=_encode(np.full((40, 40, 3), 9, np.uint8), "PNG")[:60]), 400, "undecodable"),
    "float image": (dict(data=_encode(np.ones((8, 8), np.float32), "TIFF"), content_type="image/tiff"), 400,
                    "unsupported_image"),
    "empty body": (dict(data=b""), 400, "empty_body"),
    "plain text": (dict(data=b"hello", content_type="text/plain"), 415, "unsupported_media_type"),
    "no content type": (dict(data=b"\x89PNG", content_type=None), 415, "unsupported_media_type"),
    "body over the limit": (dict(data=_big_png() + bytes(40_000)), 413, "body_too_large"),
    "chunked body over the limit": (dict(data=Chunks()), 413, "body_too_large"),
    "too many pixels": (dict(data=_encode(np.zeros((600, 600), np.uint8), "PNG")), 413, "too_many_pixels"),
    "too many images": (dict(data=None, content_type=None, files=[("f", (f"{i}.png", PNG)) for i in range(5)]), 413,
                        "too_many_images"),
    "bad json": (dict(data=b'{"images": 3}', content_type="application/json"), 400, "bad_json"),
    "bad base64": (dict(data=b'{"images": ["not base64!"]}', content_type="application/json"), 400, "bad_base64"),
    "top_k 0": (dict(data=PNG, params={"top_k": 0}), 400, "bad_parameter"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_requests_are_client_errors_with_a_json_message(service, case):
    arguments, status, kind = BAD[case]
    response = _post(service, **arguments)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == kind and len(body["message"]) > 20


def test_bad_requests_take_no_replica_down(service, ray_local):
    before = _replicas(ray_local, "test")
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda case: _post(service, **BAD[case][0]).status_code, list(BAD) * 2))
    assert codes == [BAD[case][1] for case in list(BAD) * 2]
    assert _replicas(ray_local, "test") == before
    assert _post(service, _images(1)[0]).status_code == 200


def test_32_concurrent_clients_get_correct_answers_and_no_server_error(service, local):
    images = _images(16, seed=7)
    expected = [local(data) for data in images]

    def client(k: int) -> list[tuple[int, int, dict]]:
        with requests.Session() as session:
            out = []
            for j in range(8):
                i = (k + j) % len(images)
                r = session.post(f"{service}/v1/classify?top_k=3", data=images[i], timeout=60,
                                 headers={"Content-Type": "image/png"})
                out.append((i, r.status_code, r.json()))
            return out

    with ThreadPoolExecutor(32) as pool:
        answers = [a for batch in pool.map(client, range(32)) for a in batch]
    assert len(answers) == 256 and {status for _, status, _ in answers} == {200}
    for i, _, body in answers:
        _assert_parity(body["results"][0], expected[i])


def test_sustained_load_scales_up_to_max_replicas(service):
    stop = threading.Event()

    def client() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                session.post(f"{service}/v1/classify", data=_images(1)[0], headers={"Content-Type": "image/png"})

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    try:  # Serve's handles report load every 10 s; target_ongoing_requests 1 with 8 clients asks for 2
        _wait(lambda: _running("test") == 2, 60, "a second replica")
    finally:
        stop.set()
        for t in threads:
            t.join()


def test_a_killed_replica_is_replaced_and_requests_after_it_succeed(service, ray_local):
    _wait(lambda: _running("test") >= 1, 60, "a running replica")
    before = _replicas(ray_local, "test")
    stop, codes = threading.Event(), []

    def client() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                try:
                    codes.append(session.post(f"{service}/v1/classify", data=_images(1)[0], timeout=30,
                                              headers={"Content-Type": "image/png"}).status_code)
                except requests.ConnectionError:
                    codes.append(0)

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(1)
        ray_local.kill(ray_local.get_actor(before[0], namespace="serve"), no_restart=True)
        _wait(lambda: _replaced(ray_local, before) and _running("test") == len(before), 90,
              "the killed replica to be replaced")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert codes.count(200) > 0 and set(codes) <= {200, 500, 502, 503}  # in-flight requests on it may fail
    with ThreadPoolExecutor(8) as pool:
        after = list(pool.map(lambda _: _post(service, _images(1)[0]).status_code, range(24)))
    assert after == [200] * 24


def _replaced(ray, before: list[str]) -> bool:
    """The first replica is gone and a new one has taken its place."""
    now = _replicas(ray, "test")
    return before[0] not in now and len(now) == len(before) and bool(set(now) - set(before))


# -- an app from a Serve config file -------------------------------------------------------------

def _deploy_config(ray, path: Path, config: dict) -> None:
    """`serve run CONFIG --non-blocking` against the test cluster: what `serve deploy` and KubeRay
    do, through Serve's own command line."""
    path.write_text(yaml.safe_dump(config))
    exe = Path(sys.executable).with_name("serve")
    out = subprocess.run([str(exe), "run", str(path), "--address", ray.get_runtime_context().gcs_address,
                          "--non-blocking"], env={**os.environ, "RAY_AUTH_MODE": "token"}, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr


@pytest.fixture(scope="module")
def config_app(service, models, tmp_path_factory, ray_local):
    """App `cfg` at /cfg, from a config file naming dlcls.ray.serve:build_app; two requests at a
    time and one queued, so that overload shows quickly."""
    from ray import serve

    config = {"applications": [{
        "name": "cfg", "route_prefix": "/cfg", "import_path": "dlcls.ray.serve:build_app",
        "args": {"model_uri": models[0], "num_cpus_per_replica": 0.25, "min_replicas": 1, "max_replicas": 1,
                 "max_ongoing_requests": 2, "max_queued_requests": 1, "max_batch_size": 1, "top_k": 2}}]}
    path = tmp_path_factory.mktemp("serve-config") / "serve.yaml"
    _deploy_config(ray_local, path, config)
    _wait(lambda: getattr(serve.status().applications.get("cfg"), "status", None) == "RUNNING", 120, "app cfg")
    return f"{service}/cfg", path, config


def test_the_builder_loads_from_a_serve_config_file(config_app, local):
    url, _, _ = config_app
    info = requests.get(f"{url}/v1/model", timeout=30).json()
    assert info["serving"]["max_batch_size"] == 1 and info["serving"]["top_k"] == 2
    data = _images(1)[0]
    result = _post(url, data).json()["results"][0]
    assert len(result["top_classes"]) == 2
    expected = local(data)
    assert all(abs(expected[c] - v) < 1e-6 for c, v in zip(result["top_classes"], result["top_confidences"]))


def test_overload_is_shed_with_503_not_queued_without_bound(config_app):
    url, _, _ = config_app
    big = _encode(np.random.default_rng(1).integers(0, 256, (700, 700, 3), dtype=np.uint8), "PNG")
    with ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(lambda _: _post(url, big).status_code, range(32)))
    assert set(codes) == {200, 503}, codes


def test_model_swap_through_the_user_config_under_traffic(config_app, models, s3_bucket, ray_local):
    url, path, config = config_app
    import s3fs

    s3_model = f"{s3_bucket}/models/second.hdl"
    s3fs.S3FileSystem(client_kwargs={"endpoint_url": os.environ["AWS_ENDPOINT_URL"]}).put(models[1], s3_model)
    new_id = hashlib.sha256(Path(models[1]).read_bytes()).hexdigest()
    before = _replicas(ray_local, "cfg")
    stop, answers = threading.Event(), []

    def client() -> None:
        while not stop.is_set():
            r = _post(url, _images(1)[0])
            answers.append((r.status_code, r.json()))

    thread = threading.Thread(target=client)
    thread.start()
    try:
        time.sleep(0.5)
        swapped = {**config["applications"][0], "deployments": [
            {"name": "Classifier", "user_config": {"model_uri": s3_model, "max_batch_size": 1}}]}
        _deploy_config(ray_local, path, {"applications": [swapped]})
        _wait(lambda: requests.get(f"{url}/v1/model", timeout=30).json()["model_id"] == new_id, 60, "the new model")
        count = len(answers)
        _wait(lambda: len(answers) > count + 5, 30, "answers from the new model")
    finally:
        stop.set()
        thread.join()
    assert {status for status, _ in answers} == {200}
    classes = {body["model_id"]: {r["predicted_class"] for r in body["results"]} for _, body in answers}
    assert len(classes) == 2 and classes[new_id] <= {"ok", "ng"}
    assert answers[-1][1]["model_id"] == new_id
    assert _replicas(ray_local, "cfg") == before  # reconfigured in place, not restarted

    # A model that cannot be read is refused; the replicas keep serving the one they have.
    broken = {**swapped, "deployments": [{"name": "Classifier", "user_config": {"model_uri": f"{s3_bucket}/nope.hdl"}}]}
    _deploy_config(ray_local, path, {"applications": [broken]})
    _wait(lambda: requests.get(f"{url}/v1/model", timeout=30).json()["swap_error"], 60, "the refused swap")
    info = requests.get(f"{url}/v1/model", timeout=30).json()
    assert "nope.hdl" in info["swap_error"] and info["model_id"] == new_id
    assert _post(url, _images(1)[0]).json()["model_id"] == new_id
    assert _replicas(ray_local, "cfg") == before


# -- metrics and the command ---------------------------------------------------------------------

def test_request_metrics_are_exported_through_ray(service, ray_local):
    port = next(n["MetricsExportPort"] for n in ray_local.nodes() if n["Alive"])
    wanted = ["ray_dlcls_serve_requests_total{", 'route="/v1/classify"', 'status="200"', 'status="413"',
              "ray_dlcls_serve_errors_total{", 'kind="too_many_pixels"', "ray_dlcls_serve_request_latency_ms_bucket{",
              "ray_dlcls_serve_images_total{", "ray_dlcls_serve_batch_size"]

    def exported() -> bool:
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        return all(w in text for w in wanted) and 'application="test"' in text

    _wait(exported, 60, "the dlcls metrics")


def test_serve_command_runs_in_the_foreground_until_interrupted_and_times_requests_out(service, models, ray_local):
    port = int(service.rsplit(":", 1)[1])  # Serve already listens there: the command joins it
    command = [sys.executable, "-m", "dlcls.cli", "serve", models[0], "--address",
               ray_local.get_runtime_context().gcs_address, "--port", str(port), "--name", "cli",
               "--route-prefix", "/cli", "--num-cpus-per-replica", "0.25", "--max-replicas", "1",
               "--request-timeout-s", "0.0001"]  # shorter than any classification: every one times out
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith(f"serving {models[0]} at {service}/cli/v1/classify"), line + proc.stderr.read()
        info = requests.get(f"{service}/cli/v1/model", timeout=30).json()
        assert info["model_uri"] == models[0] and info["serving"]["request_timeout_s"] == 0.0001
        late = _post(f"{service}/cli", _images(1)[0])
        assert late.status_code == 504 and late.json()["error"] == "timeout"
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "stopped" in out
    from ray import serve

    assert "cli" not in serve.status().applications


def test_serve_command_refuses_bad_settings_before_starting_ray(capsys):
    assert main(["serve", "m.hdl", "--min-replicas", "3", "--max-replicas", "2"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("dlcls serve: error:") and "min_replicas (3) is above max_replicas (2)" in err
    assert "\n" not in err
    assert main(["serve", "m.hdl", "--detach"]) == 2


def test_serve_command_reports_why_the_replicas_could_not_start(service, tmp_path, capsys):
    missing = str(tmp_path / "missing.hdl")
    assert main(["serve", missing, "--name", "missing", "--num-cpus-per-replica", "0.25"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("dlcls serve: error: the application 'missing' was not deployed:") and "\n" not in err
    assert 'Prefix / is being used by application "test"' in err
    assert main(["serve", missing, "--name", "missing", "--route-prefix", "/missing",
                 "--num-cpus-per-replica", "0.25"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("dlcls serve: error: the application 'missing' did not start:") and "\n" not in err
    assert f"no model file at '{missing}'" in err
    from ray import serve

    assert "missing" not in serve.status().applications  # deleted, not left retrying
