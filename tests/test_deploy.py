"""The deployment files, checked without a cluster: cluster/ (image, cloud cluster, job runtime
environment) and k8s/ (KubeRay manifests). Every file parses; the custom resources match the
KubeRay v1.7.0 CRD schemas; every RayJob runs a jobs/ script with arguments its parser accepts; the
RayService's Serve config builds the app; versions agree with the pinned Ray; and the settings a
real deployment needs (token authentication, network policies, /dev/shm, resources, probes, the
object-storage Secret) are in every Ray pod."""

import functools
import importlib.machinery
import importlib.util
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dlcls.cli import COMMANDS, build_parser

ROOT = Path(__file__).resolve().parent.parent
K8S, CLUSTER = ROOT / "k8s", ROOT / "cluster"
SHARED = ROOT.parent / "shared"  # the workspace's KubeRay v1.7.0 CRDs and validate-k8s, where present
PYPROJECT = (ROOT / "pyproject.toml").read_text()
RAY_PIN = re.search(r'"ray\[[^\]]*\]==([^"]+)"', PYPROJECT).group(1)
VERSION = re.search(r'^version = "([^"]+)"', PYPROJECT, re.M).group(1)
DOCKERFILE = (CLUSTER / "Dockerfile").read_text()
IMAGE_DIR = re.search(r"^WORKDIR (\S+)", DOCKERFILE, re.M).group(1)
CLUSTER_LABEL = "dlcls.io/ray-cluster"


def image(variant: str) -> str:
    return f"ghcr.io/dlcls/dlcls:{VERSION}-ray{RAY_PIN}-{variant}"


def _load(path: Path) -> list:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


MANIFESTS = {path.name: _load(path) for path in sorted(K8S.glob("*.yaml"))}
OBJECTS = [doc for docs in MANIFESTS.values() for doc in docs if doc.get("kind") != "Kustomization"]
KUSTOMIZATION = MANIFESTS["kustomization.yaml"][0]
SECRET = KUSTOMIZATION["secretGenerator"][0]["name"]


def of_kind(kind: str) -> list[dict]:
    return [doc for doc in OBJECTS if doc["kind"] == kind]


# Where each kind of custom resource keeps its RayClusterSpec.
CLUSTER_SPEC = {"RayCluster": lambda s: s, "RayJob": lambda s: s["rayClusterSpec"],
                "RayService": lambda s: s["rayClusterConfig"]}
RAY_OBJECTS = [doc for doc in OBJECTS if doc["kind"] in CLUSTER_SPEC]


def cluster_spec(doc: dict) -> dict:
    return CLUSTER_SPEC[doc["kind"]](doc["spec"])


def pod_templates(doc: dict) -> list[tuple[str, dict]]:
    """(group, pod template) of the head and every worker group."""
    spec = cluster_spec(doc)
    return [("head", spec["headGroupSpec"]["template"])] + [
        (group["groupName"], group["template"]) for group in spec["workerGroupSpecs"]]


def ids(docs: list[dict]) -> list[str]:
    return [f"{d['kind']}/{d['metadata']['name']}" for d in docs]


def test_every_file_parses_and_the_kustomization_lists_every_manifest():
    for path in sorted(CLUSTER.glob("*.yaml")):
        assert _load(path), path
    for doc in OBJECTS:
        assert doc["apiVersion"] and doc["metadata"]["name"], doc
    assert sorted(KUSTOMIZATION["resources"]) == sorted(set(MANIFESTS) - {"kustomization.yaml"})
    assert KUSTOMIZATION["generatorOptions"]["disableNameSuffixHash"]  # the pods name the Secret as it is
    (env_file,) = KUSTOMIZATION["secretGenerator"][0]["envs"]
    assert (K8S / f"{env_file}.example").exists() and env_file in (K8S / ".gitignore").read_text()


def _strict(node):
    """openapi2jsonschema's transform: no unknown fields in any object that lists its fields, so
    that a misspelt field fails (a plain check of the CRD schema lets it through)."""
    if isinstance(node, list):
        return [_strict(n) for n in node]
    if not isinstance(node, dict):
        return node
    node = {key: _strict(value) for key, value in node.items()}
    if node.get("type") == "object" and "properties" in node:
        node.setdefault("additionalProperties", False)
    return node


def _crd_schema(kind: str) -> dict:
    """The v1 openAPIV3Schema of a KubeRay CRD as strict JSON schema."""
    tool = SHARED / "tools" / "validate-k8s"
    if not (SHARED / "kuberay-crds").is_dir() or not tool.exists():
        pytest.skip(f"the KubeRay CRDs and validate-k8s are not in {SHARED}")
    return _strict_schema(kind, tool)


@functools.cache
def _strict_schema(kind: str, tool: Path) -> dict:
    """The CRD's schema, read and made plain JSON schema by validate-k8s's own functions."""
    loader = importlib.machinery.SourceFileLoader("validate_k8s", str(tool))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    loader.exec_module(module)
    return _strict(module.strip_k8s_ext(module.load_schema(kind)))


@pytest.mark.parametrize("doc", RAY_OBJECTS, ids=ids(RAY_OBJECTS))
def test_custom_resources_match_the_kuberay_crds_with_no_unknown_field(doc):
    jsonschema = pytest.importorskip("jsonschema")
    errors = [f"{'/'.join(map(str, e.path))}: {e.message[:200]}"
              for e in jsonschema.Draft7Validator(_crd_schema(doc["kind"])).iter_errors(doc)]
    assert not errors


def test_validate_k8s_passes():
    tool = SHARED / "tools" / "validate-k8s"
    if not tool.exists():
        pytest.skip(f"{tool} is not in this workspace")
    out = subprocess.run([sys.executable, str(tool), "k8s", "cluster"], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith("OK")


def test_ray_versions_and_image_tags_agree_with_the_pinned_ray():
    for doc in RAY_OBJECTS:
        assert cluster_spec(doc)["rayVersion"] == RAY_PIN, doc["metadata"]["name"]
    files = [p for p in [*CLUSTER.iterdir(), *K8S.iterdir()] if p.is_file()]
    texts = [re.sub(r"(?m)^\s*#.*$", "", p.read_text()) for p in files]  # the files' settings, not their comments
    assert re.search(rf"^ARG RAY_VERSION={re.escape(RAY_PIN)}$", DOCKERFILE, re.M)
    tags = [t.replace("${RAY_VERSION}", RAY_PIN) for text in texts for t in re.findall(r"rayproject/ray:(\S+)", text)]
    assert {f"{RAY_PIN}-py311", f"{RAY_PIN}-py311-gpu"} <= set(tags) and all(t.startswith(RAY_PIN) for t in tags)
    dlcls_images = {i for text in texts for i in re.findall(r"ghcr\.io/dlcls/dlcls:\S+", text)}
    assert dlcls_images == {image("cpu"), image("gpu")}


@pytest.mark.parametrize("doc", RAY_OBJECTS, ids=ids(RAY_OBJECTS))
def test_gpu_pods_run_the_cuda_image_and_cpu_pods_the_cpu_image(doc):
    for _, template in pod_templates(doc):
        container = template["spec"]["containers"][0]
        gpus = container["resources"]["limits"].get("nvidia.com/gpu", 0)
        assert container["image"] == image("gpu" if gpus else "cpu")
        if gpus:
            assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in template["spec"][
                "tolerations"]


RAYJOBS = of_kind("RayJob")


def test_there_is_a_rayjob_for_each_batch_command():
    assert sorted(d["metadata"]["name"] for d in RAYJOBS) == [
        f"dlcls-{c}" for c in sorted(["preprocess", "train", "evaluate", "classify"])]


@pytest.mark.parametrize("doc", RAYJOBS, ids=ids(RAYJOBS))
def test_rayjob_entrypoint_runs_a_jobs_script_with_arguments_its_parser_accepts(doc):
    python, script, *argv = shlex.split(doc["spec"]["entrypoint"])
    command = Path(script).stem
    assert python == "python" and script == f"jobs/{command}.py" and (ROOT / script).is_file()
    assert command in COMMANDS and doc["metadata"]["name"] == f"dlcls-{command}"
    args = build_parser().parse_args([command, *argv])  # argparse exits (code 2) on a bad argument
    assert args.run.__module__ == COMMANDS[command][0]


@pytest.mark.parametrize("doc", RAYJOBS, ids=ids(RAYJOBS))
def test_rayjob_tears_its_cluster_down_and_has_a_valid_runtime_env(doc):
    pytest.importorskip("ray")
    from ray.runtime_env import RuntimeEnv

    spec = doc["spec"]
    assert spec["shutdownAfterJobFinishes"] is True and spec["ttlSecondsAfterFinished"] > 0
    assert spec.get("submissionMode", "K8sJobMode") == "K8sJobMode" and spec["suspend"] is True
    env = yaml.safe_load(spec["runtimeEnvYAML"])
    # The working_dir is the image's copy of the checkout; here the checkout stands in for it.
    assert env["working_dir"] == IMAGE_DIR
    RuntimeEnv(**{**env, "working_dir": str(ROOT)})
    submitter = spec["submitterPodTemplate"]
    assert submitter["spec"]["containers"][0]["image"] == image("cpu")
    assert submitter["metadata"]["labels"][CLUSTER_LABEL] == doc["metadata"]["name"]  # let in by its NetworkPolicy


@pytest.mark.parametrize("doc", RAY_OBJECTS, ids=ids(RAY_OBJECTS))
def test_clusters_autoscale_between_written_out_bounds_with_a_head_that_runs_no_work(doc):
    spec = cluster_spec(doc)
    assert spec["enableInTreeAutoscaling"] is True
    assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    for group in spec["workerGroupSpecs"]:
        assert 0 <= group["minReplicas"] <= group.get("replicas", 0) <= group["maxReplicas"], group["groupName"]
    if doc["kind"] == "RayCluster":
        assert [g["groupName"] for g in spec["workerGroupSpecs"]] == ["cpu", "gpu"]


@pytest.mark.parametrize("doc", RAY_OBJECTS, ids=ids(RAY_OBJECTS))
def test_token_authentication_is_on_and_nothing_is_exposed(doc):
    spec = cluster_spec(doc)
    assert spec["authOptions"] == {"mode": "token"}
    head = spec["headGroupSpec"]
    assert head.get("serviceType", "ClusterIP") == "ClusterIP" and not head.get("enableIngress", False)
    assert not [o for o in OBJECTS if o["kind"] in ("Ingress", "Service", "Route", "Gateway")]


@pytest.mark.parametrize("doc", RAY_OBJECTS, ids=ids(RAY_OBJECTS))
def test_every_ray_pod_has_shm_resources_probes_the_secret_and_its_cluster_label(doc):
    name = doc["metadata"]["name"]
    for group, template in pod_templates(doc):
        pod, container = template["spec"], template["spec"]["containers"][0]
        assert template["metadata"]["labels"][CLUSTER_LABEL] == name, group
        shm = [m["name"] for m in container["volumeMounts"] if m["mountPath"] == "/dev/shm"]
        assert [v["emptyDir"]["medium"] for v in pod["volumes"] if v["name"] in shm] == ["Memory"], group
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"][kind]), group
        assert container["readinessProbe"] and container["livenessProbe"], group
        assert {"secretRef": {"name": SECRET}} in container["envFrom"], group
    head = cluster_spec(doc)["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert head["workingDir"] == IMAGE_DIR  # where `python jobs/<command>.py` finds its script


def _policy_for(label: str) -> dict:
    selector = {"matchLabels": {CLUSTER_LABEL: label}}
    (policy,) = [p for p in of_kind("NetworkPolicy") if p["spec"]["podSelector"] == selector]
    return policy


@pytest.mark.parametrize("doc", RAY_OBJECTS, ids=ids(RAY_OBJECTS))
def test_control_ports_are_reachable_only_from_the_same_cluster_and_the_operator(doc):
    name = doc["metadata"]["name"]
    rules = _policy_for(name)["spec"]["ingress"]
    same_cluster = {"from": [{"podSelector": {"matchLabels": {CLUSTER_LABEL: name}}}]}
    operator = [r for r in rules if r != same_cluster and "from" in r]
    open_to_all = [r for r in rules if "from" not in r]
    assert same_cluster in rules and len(operator) == 1
    assert operator[0]["from"][0]["podSelector"] == {"matchLabels": {"app.kubernetes.io/component": "kuberay-operator"}}
    assert operator[0]["ports"] == [{"port": 8265, "protocol": "TCP"}]
    assert open_to_all == ([{"ports": [{"port": 8000, "protocol": "TCP"}]}] if doc["kind"] == "RayService" else [])


def test_ray_pods_outside_a_dlcls_cluster_accept_nothing_and_policies_are_valid():
    (deny,) = [p for p in of_kind("NetworkPolicy") if p["metadata"]["name"] == "ray-deny-ingress"]
    assert deny["spec"] == {"podSelector": {"matchLabels": {"ray.io/is-ray-node": "yes"}}, "policyTypes": ["Ingress"]}
    jsonschema = pytest.importorskip("jsonschema")
    # KubeRay's own networkPolicy field embeds Kubernetes' NetworkPolicyIngressRule: check ours with it.
    rule = _crd_schema("RayCluster")["properties"]["spec"]["properties"]["networkPolicy"]["properties"]["head"][
        "properties"]["ingressRules"]["items"]
    for policy in of_kind("NetworkPolicy"):
        assert policy["spec"]["policyTypes"] == ["Ingress"]
        for r in policy["spec"].get("ingress", []):
            jsonschema.validate(r, rule)


def test_the_rayservice_serve_config_parses_and_builds_an_autoscaled_app():
    pytest.importorskip("ray.serve")
    from ray.serve._private.utils import import_attr
    from ray.serve.schema import ServeDeploySchema

    (service,) = of_kind("RayService")
    config = ServeDeploySchema.model_validate(yaml.safe_load(service["spec"]["serveConfigV2"]))
    (application,) = config.applications
    assert application.import_path == "dlcls.ray.serve:build_app"
    app = import_attr(application.import_path)(application.args)  # what Serve does with the args
    autoscaling = app._bound_deployment._deployment_config.autoscaling_config
    assert (autoscaling.min_replicas, autoscaling.max_replicas) == (application.args["min_replicas"],
                                                                   application.args["max_replicas"])
    assert autoscaling.max_replicas > autoscaling.min_replicas
    workers = cluster_spec(service)["workerGroupSpecs"]
    assert sum(g["maxReplicas"] for g in workers) > sum(g["minReplicas"] for g in workers)  # pods scale too


def test_the_cloud_cluster_config_is_valid_autoscales_and_keeps_the_head_free_of_work():
    pytest.importorskip("ray")
    from ray.autoscaler._private.util import prepare_config, validate_config

    raw = _load(CLUSTER / "aws.yaml")[0]
    config = prepare_config(raw)
    validate_config(config)
    types = config["available_node_types"]
    assert types[config["head_node_type"]]["resources"] == {"CPU": 0}
    assert types["cpu-worker"]["max_workers"] > types["cpu-worker"]["min_workers"] == 0
    assert types["gpu-worker"]["max_workers"] > types["gpu-worker"]["min_workers"] == 0
    assert config["docker"]["image"] == image("cpu") and types["gpu-worker"]["docker"]["worker_image"] == image("gpu")
    assert "--env RAY_AUTH_MODE=token" in config["docker"]["run_options"]
    assert config["file_mounts"] == {"~/.ray/auth_token": "~/.ray/auth_token"}
    assert "--dashboard-host=127.0.0.1" in " ".join(config["head_start_ray_commands"])


def test_the_job_runtime_env_ships_the_checkout_and_no_secret():
    pytest.importorskip("ray")
    from ray.runtime_env import RuntimeEnv

    env = _load(CLUSTER / "runtime-env.yaml")[0]
    assert env["working_dir"] == "."
    RuntimeEnv(**{**env, "working_dir": str(ROOT)})
    assert not [k for k in env.get("env_vars", {}) if re.search("SECRET|TOKEN|PASSWORD|KEY", k)]


def test_the_image_holds_jobs_and_the_source_for_both_variants():
    assert re.search(r"^FROM rayproject/ray:\$\{RAY_VERSION\}-py311 AS base-cpu$", DOCKERFILE, re.M)
    assert re.search(r"^FROM rayproject/ray:\$\{RAY_VERSION\}-py311-gpu AS base-gpu$", DOCKERFILE, re.M)
    assert re.search(r"^FROM base-\$\{VARIANT\}$", DOCKERFILE, re.M)
    for copied in ("jobs", "dlcls", "pyproject.toml", "constraints.txt"):
        assert re.search(rf"^COPY .*\b{re.escape(copied)}\b", DOCKERFILE, re.M), copied
    assert ".venv/" in (CLUSTER / "Dockerfile.dockerignore").read_text().split()


def test_kustomize_builds_every_object_into_the_namespace(tmp_path):
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    shutil.copytree(K8S, tmp_path / "k8s")
    shutil.copy(K8S / "object-storage.env.example", tmp_path / "k8s" / "object-storage.env")
    out = subprocess.run([kubectl, "kustomize", str(tmp_path / "k8s")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    built = list(yaml.safe_load_all(out.stdout))
    assert sorted(ids(built)) == sorted(ids(OBJECTS) + [f"Secret/{SECRET}"])
    assert all(d["metadata"].get("namespace") == KUSTOMIZATION["namespace"] for d in built if d["kind"] != "Namespace")
