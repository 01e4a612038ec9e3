"""The whole product on one Ray: generate a labelled data set, preprocess it into shards, train
data-parallel, evaluate, classify new images offline, answer HTTP requests from a Serve
deployment, shut down. Each step is the library function behind its `dlcls` command."""

import json
import shutil
import socket
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from .. import synthetic
from ..core import storage, tables
from .batch import classify, evaluate
from .data import preprocess
from .train import train
from .train_loop import Schedule


@dataclass(frozen=True)
class DemoConfig:
    workdir: str = "dlcls-demo"
    store: str | None = None  # where shards, models and results go (default: the workdir)
    per_class: int = 300
    incoming: int = 100  # unlabelled images for the offline classification
    image_size: int = 64
    epochs: int = 16
    batch_size: int = 32
    learning_rate: float = 0.01
    workers: int = 2
    requests: int = 5  # HTTP requests sent to the Serve deployment
    seed: int = 42
    model: str = "pretrained_dl_classifier_compact.hdl"


def locations(config: DemoConfig) -> dict[str, str]:
    """Where each step writes; generated images are made locally first, then copied to the store."""
    store = str(config.store or Path(config.workdir).absolute()).rstrip("/")
    return {"images": f"{store}/images", "incoming": f"{store}/incoming", "shards": f"{store}/shards",
            "model": f"{store}/model/model.hdl", "runs": f"{store}/model/runs",
            "evaluation": f"{store}/evaluation", "predictions": f"{store}/predictions"}


def run_demo(config: DemoConfig, say=print, progress=None) -> dict:
    """Run every step on the running Ray (see session.ray_session); returns what each produced."""
    where, started = locations(config), time.perf_counter()
    _start_over(config, where)
    steps = [("generate", _generate), ("preprocess", _preprocess), ("train", _train), ("evaluate", _evaluate),
             ("classify", _classify), ("serve", _serve)]
    done = {}
    for number, (name, step) in enumerate(steps, 1):
        say(f"[{number}/{len(steps)}] {name}")
        began = time.perf_counter()
        done[name] = step(config, where, done, say, progress)
        done[name]["seconds"] = round(time.perf_counter() - began, 1)
    return {"steps": done, "outputs": where, "seconds": round(time.perf_counter() - started, 1)}


def _start_over(config: DemoConfig, where: dict) -> None:
    """A demo run starts fresh: the outputs of an earlier run would otherwise be resumed."""
    shutil.rmtree(Path(config.workdir) / "generated", ignore_errors=True)
    for name in ("images", "incoming", "shards", "runs", "evaluation", "predictions"):
        storage.remove(where[name])


def _generate(config: DemoConfig, where: dict, done: dict, say, progress) -> dict:
    local = Path(config.workdir) / "generated"
    synthetic.write_data_set(local / "images", config.per_class, size=64, seed=config.seed)
    synthetic.write_unlabelled(local / "incoming", config.incoming, size=64, seed=config.seed + 1)
    for name in ("images", "incoming"):
        fs, path = storage.filesystem(where[name])
        fs.put(f"{local / name}/", f"{path}/", recursive=True)
    say(f"  {config.per_class} images per class of {list(synthetic.CLASSES)} -> {where['images']}; "
        f"{config.incoming} unlabelled images -> {where['incoming']}")
    return {"images": config.per_class * len(synthetic.CLASSES), "incoming": config.incoming}


def _preprocess(config: DemoConfig, where: dict, done: dict, say, progress) -> dict:
    size = config.image_size
    manifest = preprocess(where["images"], where["shards"], config.model, seed=config.seed,
                          image_dimensions=[size, size, 3])
    split = {name: sum(per_class.values()) for name, per_class in manifest["counts"].items()}
    say(f"  {manifest['rows']} images in {len(manifest['shards'])} shards, split {split}, "
        f"{manifest['errors']} errors -> {where['shards']}")
    return {"rows": manifest["rows"], "split": split}


def _train(config: DemoConfig, where: dict, done: dict, say, progress) -> dict:
    schedule = Schedule(config.epochs, config.seed, step_epochs=max(1, config.epochs // 2),
                        augmentation={"mirror": "rc"})
    params = {"batch_size": config.batch_size, "learning_rate": config.learning_rate}
    result = train(where["shards"], config.model, where["model"], schedule, workers=config.workers,
                   run_name="demo", storage_uri=where["runs"], params=params, progress=progress)
    best = result["best"]
    say(f"  {config.workers} workers, {config.epochs} epochs: best validation error "
        f"{100 * best['validation_error']:.1f}% at epoch {best['epoch']}")
    return {"outputs": result["outputs"], "best": best, "run": result["run"]}


def _evaluate(config: DemoConfig, where: dict, done: dict, say, progress) -> dict:
    manifest = evaluate(done["train"]["outputs"]["best"], where["shards"], where["evaluation"], split="test")
    overall = manifest["metrics"][-1]
    say(f"  test split, {manifest['rows']} images: top-1 error {100 * overall['top1_error']:.1f}% "
        f"(accuracy {100 * (1 - overall['top1_error']):.1f}%) -> {where['evaluation']}")
    return {"rows": manifest["rows"], "global": overall}


def _classify(config: DemoConfig, where: dict, done: dict, say, progress) -> dict:
    manifest = classify(done["train"]["outputs"]["best"], where["incoming"], where["predictions"])
    predicted = pa.concat_tables(tables.read_parquet(f"{where['predictions']}/{part}")
                                 for part in manifest["tables"]["predictions"]).column("predicted_class")
    counts = {c["values"]: c["counts"] for c in pc.value_counts(predicted).to_pylist()}
    say(f"  {manifest['rows']} unlabelled images classified, {manifest['errors']} errors: "
        f"{dict(sorted(counts.items()))} -> {where['predictions']}")
    return {"rows": manifest["rows"], "counts": counts}


def _serve(config: DemoConfig, where: dict, done: dict, say, progress) -> dict:
    """Deploy the best model as `dlcls serve` does, post test-split images to it, take it down."""
    from ray import serve

    from .serve import start, stop

    picks = _test_images(where["shards"], config.requests)
    url = start({"model_uri": done["train"]["outputs"]["best"], "max_replicas": 1, "num_cpus_per_replica": 0.5},
                port=_free_port(), name="dlcls-demo")
    try:
        answers = [_post(f"{url}/v1/classify?top_k=2", storage.read_bytes(row["path"])) for row in picks]
    finally:
        stop("dlcls-demo")
        if not serve.status().applications:  # Serve was started for the demo
            serve.shutdown()
    correct = 0
    for row, answer in zip(picks, answers):
        top = answer["results"][0]
        correct += top["predicted_class"] == row["label"]
        say(f"  POST {row['relative_path']} -> {top['predicted_class']} ({top['confidence']:.3f}), "
            f"true class {row['label']}")
    say(f"  {url}/v1/classify answered {len(answers)} requests, {correct} correctly; the deployment is shut down")
    return {"url": url, "sent": len(picks), "answered": len(answers), "correct": correct}


def _test_images(shards: str, count: int) -> list[dict]:
    """`count` test-split images, spread over the classes."""
    listing = tables.read_parquet(f"{shards}/listing.parquet")
    test = listing.filter(pc.equal(listing.column("split"), "test")).sort_by("relative_path").to_pylist()
    step = max(1, len(test) // max(count, 1))
    return test[::step][:count]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, data: bytes) -> dict:
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "image/png"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())
