"""preprocess_dl_classifier_images on 640x480 JPEG files -> 224x224x3 network input, against a
plain Pillow loop (open, convert('RGB'), resize bilinear, np.asarray) over the same files, in one
run. Target: the procedure reaches >= 0.95 of the plain loop. The procedure also produces the
float32 network range, where the loop stops at uint8; a second baseline adds that step. The JPEG
draft (decode at 1/2 scale, see dlcls/core/decode.py) is measured on and off.

    .venv/bin/python benchmarks/bench_preprocess.py [--images 300]
"""

import argparse
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

sys.path.insert(0, str(Path(__file__).parent))
from common import interleaved, report  # noqa: E402

import dlcls  # noqa: E402
from dlcls.procedures.preprocess import preprocess_dl_classifier_images  # noqa: E402

SIZE = (640, 480)
NETWORK = 224


def natural_image(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """Smooth colour fields, a dozen blurred ellipses and sensor-like noise: photo-like JPEG work."""
    image = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize((width, height),
                                                                                    Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x, y, r = int(rng.integers(0, width)), int(rng.integers(0, height)), int(rng.integers(10, 120))
        draw.ellipse([x - r, y - r, x + r, y + r // 2], fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    pixels = np.asarray(image.filter(ImageFilter.GaussianBlur(1.5))).astype(np.float32)
    return Image.fromarray(np.clip(pixels + rng.normal(0, 8, pixels.shape), 0, 255).astype(np.uint8))


def write_images(directory: Path, count: int) -> list[str]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = directory / f"image_{i:04d}.jpg"
        natural_image(rng, *SIZE).save(path, quality=90)
        paths.append(str(path))
    return paths


def plain_loop(paths: list[str]):
    def run():
        for path in paths:
            with Image.open(path) as image:
                np.asarray(image.convert("RGB").resize((NETWORK, NETWORK), Image.Resampling.BILINEAR))
        return len(paths)
    return run


def plain_loop_float(paths: list[str]):
    """The plain loop plus the byte -> [-127, 128] float32 step, which the procedure also does."""
    def run():
        batch = np.empty((len(paths), NETWORK, NETWORK, 3), np.float32)
        for i, path in enumerate(paths):
            with Image.open(path) as image:
                batch[i] = np.asarray(image.convert("RGB").resize((NETWORK, NETWORK), Image.Resampling.BILINEAR))
        batch -= 127.0
        return len(paths)
    return run


def procedure(paths: list[str], handle, jpeg_draft: bool):
    def run():
        return len(preprocess_dl_classifier_images(paths, handle, jpeg_draft=jpeg_draft))
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    warnings.simplefilter("ignore", dlcls.PretrainedWeightsWarning)  # only the geometry of the handle is used
    handle = dlcls.read_dl_classifier("compact")  # 224x224x3, range [-127, 128]
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_images(Path(tmp), args.images)
        rates = interleaved({
            "plain Pillow loop (uint8)": plain_loop(paths),
            "plain Pillow loop + float32 range": plain_loop_float(paths),
            "preprocess_dl_classifier_images": procedure(paths, handle, jpeg_draft=True),
            "  ... with jpeg_draft=False": procedure(paths, handle, jpeg_draft=False),
        }, rounds=args.rounds)
    report(f"{args.images} JPEG files {SIZE[0]}x{SIZE[1]} -> {NETWORK}x{NETWORK}x3, one process",
           rates, baseline="plain Pillow loop (uint8)")


if __name__ == "__main__":
    main()
