"""Shared fixtures: a real S3 endpoint on localhost (moto's server), reached through s3fs
exactly as production does, with the endpoint and credentials in the standard AWS variables."""

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid

import pytest


def free_port() -> int:
    """A TCP port nothing listens on now (the tests' servers and Ray nodes take theirs from here)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint():
    """The URL of a moto S3 server on localhost, running for the whole test session."""
    port = free_port()
    exe = shutil.which("moto_server", path=os.path.dirname(sys.executable)) or shutil.which("moto_server")
    proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        raise RuntimeError("moto_server did not start")
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def s3_bucket(s3_endpoint, monkeypatch):
    """A fresh bucket; returns 's3://<bucket>'. AWS_* variables point s3fs at the moto server."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    bucket = f"test-{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem(client_kwargs={"endpoint_url": s3_endpoint}).mkdir(bucket)
    return f"s3://{bucket}"


def separable_batch(rng, n: int, classes: int = 3, size: int = 32, channels: int = 3):
    """Real-valued images in network range whose class is where a bright square sits."""
    import numpy as np

    labels = rng.integers(0, classes, n)
    images = rng.normal(0.0, 25.0, (n, size, size, channels)).astype(np.float32)
    half = size // 2
    for i, y in enumerate(labels):
        r, c = divmod(int(y), 2)
        images[i, r * half : r * half + half, c * half : c * half + half, :] += 90.0
    return np.clip(images, -127, 128), labels


@pytest.fixture
def small_classifier():
    """A factory for a compact network at 32x32 with three classes and a small batch."""
    import dlcls

    def make(name: str = "compact", size: int = 32, batch_size: int = 8, classes=("a", "b", "c")):
        handle = dlcls.read_dl_classifier(name)
        dlcls.set_dl_classifier_param(handle, "classes", list(classes))
        dlcls.set_dl_classifier_param(handle, "image_dimensions", [size, size, 3])
        dlcls.set_dl_classifier_param(handle, "batch_size", batch_size)
        dlcls.set_dl_classifier_param(handle, "runtime", "cpu")
        return handle

    return make


@pytest.fixture(scope="session")
def ray_local(s3_endpoint):
    """One local Ray (2 CPUs) for every Ray test. Its workers inherit the environment of this
    process at start, so the S3 endpoint and test credentials are set before Ray starts."""
    ray = pytest.importorskip("ray")
    for key, value in {"AWS_ENDPOINT_URL": s3_endpoint, "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        os.environ[key] = value
    ray.init(num_cpus=2, log_to_driver=False, include_dashboard=False)
    yield ray
    ray.shutdown()
