"""`ray job submit` against a real two-node Ray cluster started on this machine with `ray start`
(a head and a second node joining it), token authentication on: a dlcls job entry point runs to
success with the runtime environment of cluster/runtime-env.yaml and writes its outputs, and a
client without the token, or with a wrong one, is refused.

The cluster is the test's own (its temp dirs, a fresh token, free ports), apart from the local Ray
of the other tests; it is torn down by killing the process groups of its two `ray start --block`.
"""

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import free_port

from dlcls import synthetic

ROOT = Path(__file__).resolve().parent.parent
# Each node's Ray ports; the rest (worker ports) come from Ray's range. Fixed defaults such as the
# dashboard agent's 52365 would collide with another Ray on this machine.
NODE_PORTS = ["--node-manager-port", "--object-manager-port", "--dashboard-agent-listen-port",
              "--dashboard-agent-grpc-port", "--runtime-env-agent-port", "--metrics-export-port"]


def _ports(*flags: str) -> list[str]:
    return [part for flag in flags for part in (flag, str(free_port()))]


def _wait(what: str, ready, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} after {timeout:.0f} s")
        time.sleep(0.3)


class TwoNodeRay:
    """`ray start --head` and `ray start --address` in their own process groups, each node with
    its own temp dir (two nodes sharing one would share the runtime-env files, and the second
    node's setup of a job's working_dir deletes the one the driver runs in)."""

    def __init__(self, workdir: Path):
        self.workdir, self.token = workdir, secrets.token_hex(32)
        self.ray = shutil.which("ray", path=os.path.dirname(sys.executable))
        (workdir / "auth_token").write_text(self.token)
        self.env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(workdir / "auth_token"),
                    # the job's `python` is this environment's, as on a cluster whose image has dlcls
                    "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ["PATH"]]),
                    "RAY_USAGE_STATS_ENABLED": "0", "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}
        for name in ("RAY_ADDRESS", "RAY_AUTH_TOKEN"):
            self.env.pop(name, None)
        self.gcs_port, self.dashboard_port = free_port(), free_port()
        self.dashboard = f"http://127.0.0.1:{self.dashboard_port}"
        self.nodes: list[subprocess.Popen] = []

    def start(self) -> None:
        self._node("head", ["--head", "--port", str(self.gcs_port), "--dashboard-port", str(self.dashboard_port),
                            *_ports("--ray-client-server-port")])
        _wait("the head's dashboard did not answer", lambda: self._get("/api/version") is not None)
        self._node("worker", ["--address", f"127.0.0.1:{self.gcs_port}"])
        _wait("the second node did not join", lambda: self.alive_nodes() == 2)

    def _node(self, name: str, args: list[str]) -> None:
        with open(self.workdir / f"{name}.log", "w") as log:
            self.nodes.append(subprocess.Popen(
                [self.ray, "start", "--block", "--num-cpus", "1", "--disable-usage-stats",
                 "--temp-dir", str(self.workdir / name), *args, *_ports(*NODE_PORTS)],
                env=self.env, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))

    def _get(self, path: str):
        request = urllib.request.Request(self.dashboard + path, headers={"Authorization": f"Bearer {self.token}"})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return json.loads(response.read())
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return None

    def alive_nodes(self) -> int:
        answer = self._get("/nodes?view=summary") or {}
        return sum(n["raylet"]["state"] == "ALIVE" for n in answer.get("data", {}).get("summary", []))

    def submit(self, env: dict, *entrypoint: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [self.ray, "job", "submit", "--address", self.dashboard, "--runtime-env", "cluster/runtime-env.yaml",
             "--", *entrypoint], env=env, cwd=ROOT, capture_output=True, text=True, timeout=240)

    def stop(self) -> None:
        for node in reversed(self.nodes):
            _signal(node, signal.SIGTERM)
        for node in reversed(self.nodes):
            try:
                node.wait(timeout=30)
            except subprocess.TimeoutExpired:
                _signal(node, signal.SIGKILL)
                node.wait(timeout=10)


def _signal(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass


@pytest.fixture(scope="module")
def two_node_ray():
    pytest.importorskip("ray")
    # A short path: Ray's unix sockets live under the temp dir and their paths must stay short.
    workdir = Path(tempfile.mkdtemp(prefix="dlcls-ray-", dir="/tmp"))
    cluster = TwoNodeRay(workdir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def test_a_submitted_job_runs_to_success_and_writes_its_outputs(two_node_ray):
    work = two_node_ray.workdir
    synthetic.write_data_set(work / "images", per_class=2, size=32, seed=5)
    out = two_node_ray.submit(two_node_ray.env, "python", "jobs/preprocess.py", str(work / "images"),
                              str(work / "shards"), "--model", "compact", "--image-dimensions", "32", "32", "3",
                              "--rows-per-shard", "4")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "succeeded" in out.stdout + out.stderr
    assert "10 files listed, 10 preprocessed, 0 errors" in out.stdout  # the job's own summary, streamed back
    manifest = json.loads((work / "shards" / "manifest.json").read_text())
    assert manifest["rows"] == 10 and len(list((work / "shards" / "shards").glob("*.parquet"))) == 3


@pytest.mark.parametrize("token", [None, "0" * 64], ids=["no token", "wrong token"])
def test_a_client_without_the_cluster_token_is_refused(two_node_ray, token, tmp_path):
    env = {k: v for k, v in two_node_ray.env.items() if not k.startswith("RAY_AUTH")}
    env["HOME"] = str(tmp_path)  # no ~/.ray/auth_token to fall back on
    if token:
        env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
    marker = tmp_path / "ran"
    out = two_node_ray.submit(env, "python", "-c", f"open({str(marker)!r}, 'w')")
    assert out.returncode != 0 and not marker.exists()
    assert ("Invalid authentication token" if token else "Missing authentication token") in out.stderr
