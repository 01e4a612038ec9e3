"""train_dl_classifier_batch and apply_dl_classifier against a plain PyTorch loop on the same
network, batch and threads, in one run. Target: the operators reach >= 0.95 of the plain loop.

    .venv/bin/python benchmarks/bench_operators.py
"""

import copy
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import interleaved, report  # noqa: E402

import dlcls  # noqa: E402

CASES = [("compact", 128, 32), ("resnet18", 96, 24)]  # network, image side, batch_size
APPLY_IMAGES = 160


def _handle(name: str, side: int, batch: int):
    handle = dlcls.read_dl_classifier(name)
    dlcls.set_dl_classifier_param(handle, "classes", ["good", "scratch", "dent", "crack"])
    dlcls.set_dl_classifier_param(handle, "image_dimensions", [side, side, 3])
    dlcls.set_dl_classifier_param(handle, "batch_size", batch)
    dlcls.set_dl_classifier_param(handle, "runtime", "cpu")
    return handle


def _plain_train(model, x, y, lr=0.001, momentum=0.9):
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)

    def step():
        model.train()
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        loss.item()
        return len(x)
    return step


def _plain_apply(model, images_nchw, batch):
    def run():
        model.eval()
        with torch.inference_mode():
            out = [torch.softmax(model(c), 1).numpy() for c in images_nchw.split(batch)]
        np.concatenate(out)
        return len(images_nchw)
    return run


def bench(name: str, side: int, batch: int) -> dict:
    handle = _handle(name, side, batch)
    plain_model = copy.deepcopy(handle.network)
    rng = np.random.default_rng(0)
    images = rng.uniform(-127, 128, (batch, side, side, 3)).astype(np.float32)
    labels = rng.integers(0, 4, batch)
    x, y = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(labels)

    def operator_train():
        dlcls.get_dl_classifier_train_result(dlcls.train_dl_classifier_batch(images, handle, labels), "loss")
        return batch

    train = report(f"{name} {side}x{side} training, batch {batch}, {torch.get_num_threads()} threads",
                   interleaved({"plain PyTorch loop": _plain_train(plain_model, x, y),
                                "train_dl_classifier_batch": operator_train}, rounds=9), "plain PyTorch loop")
    many = rng.uniform(-127, 128, (APPLY_IMAGES, side, side, 3)).astype(np.float32)
    many_nchw = torch.from_numpy(many).permute(0, 3, 1, 2).contiguous()

    def operator_apply():
        dlcls.get_dl_classifier_result(dlcls.apply_dl_classifier(many, handle), "all", "confidences")
        return APPLY_IMAGES

    apply = report(f"{name} {side}x{side} inference, {APPLY_IMAGES} images in batches of {batch}",
                   interleaved({"plain PyTorch loop": _plain_apply(plain_model, many_nchw, batch),
                                "apply_dl_classifier": operator_apply}, rounds=9), "plain PyTorch loop")
    return {"train": train["train_dl_classifier_batch"], "apply": apply["apply_dl_classifier"]}


def main() -> int:
    ratios = {name: bench(name, side, batch) for name, side, batch in CASES}
    worst = min(r for case in ratios.values() for r in case.values())
    print(f"\nworst operator/plain ratio: {worst:.3f} (target >= 0.95)")
    return 0 if worst >= 0.95 else 1


if __name__ == "__main__":
    sys.exit(main())
