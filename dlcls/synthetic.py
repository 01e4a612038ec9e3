"""A generated industrial data set: machined parts (washers) on a conveyor, with defects.

Each image shows one washer under uneven light with sensor noise, at a random position, size and
rotation. Classes: 'good', and the defects 'scratch' (a thin bright line), 'dent' (a dark blurred
spot), 'crack' (a jagged dark line from the rim) and 'stain' (a faint large blob). Defects vary in
size and contrast, so a network needs several epochs to separate them. The same seed gives the
same images on every machine.
"""

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

CLASSES = ("crack", "dent", "good", "scratch", "stain")


def _washer(rng: np.random.Generator, size: int) -> tuple[Image.Image, tuple[float, float, float, float]]:
    """A gray washer on a dark belt; returns the image and (cx, cy, outer, inner) radii."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    light = 40 + 25 * (xx * rng.uniform(-1, 1) + yy * rng.uniform(-1, 1)) / size  # uneven light
    belt = light + rng.normal(0, 6, (size, size))
    cx, cy = size / 2 + rng.uniform(-0.08, 0.08, 2) * size
    outer = size * rng.uniform(0.2, 0.28)
    inner = outer * rng.uniform(0.35, 0.5)
    r = np.hypot(xx - cx, yy - cy)
    metal = 150 + 30 * np.cos(np.arctan2(yy - cy, xx - cx) * rng.integers(1, 4)) * rng.uniform(0, 0.5)
    ring = (r < outer) & (r > inner)
    pixels = np.where(ring, metal + rng.normal(0, 8, (size, size)) + 0.2 * light, belt)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    return image.filter(ImageFilter.GaussianBlur(0.6)), (cx, cy, outer, inner)


def _point_on_ring(rng, cx, cy, outer, inner) -> tuple[float, float]:
    angle, radius = rng.uniform(0, 2 * np.pi), rng.uniform(inner * 1.15, outer * 0.85)
    return cx + radius * np.cos(angle), cy + radius * np.sin(angle)


def _scratch(image, rng, geometry):
    x, y = _point_on_ring(rng, *geometry)
    angle, length = rng.uniform(0, np.pi), geometry[2] * rng.uniform(0.4, 0.8)
    dx, dy = np.cos(angle) * length / 2, np.sin(angle) * length / 2
    ImageDraw.Draw(image).line([(x - dx, y - dy), (x + dx, y + dy)], fill=int(rng.uniform(220, 255)), width=2)
    return image


def _dent(image, rng, geometry):
    x, y = _point_on_ring(rng, *geometry)
    radius = geometry[2] * rng.uniform(0.1, 0.18)
    spot = Image.new("L", image.size, 0)
    ImageDraw.Draw(spot).ellipse([x - radius, y - radius * 0.7, x + radius, y + radius * 0.7], fill=255)
    spot = spot.filter(ImageFilter.GaussianBlur(radius / 3))
    darker = Image.eval(image, lambda v: int(v * rng.uniform(0.2, 0.45)))
    return Image.composite(darker, image, spot)


def _crack(image, rng, geometry):
    cx, cy, outer, inner = geometry
    angle = rng.uniform(0, 2 * np.pi)
    radii = np.linspace(outer * 0.98, outer - (outer - inner) * rng.uniform(0.4, 0.9), 6)
    points = [(cx + r * np.cos(angle + rng.normal(0, 0.06)), cy + r * np.sin(angle + rng.normal(0, 0.06)))
              for r in radii]
    ImageDraw.Draw(image).line(points, fill=int(rng.uniform(10, 50)), width=2)
    return image


def _stain(image, rng, geometry):
    x, y = _point_on_ring(rng, *geometry)
    radius = geometry[2] * rng.uniform(0.2, 0.35)
    blob = Image.new("L", image.size, 0)
    ImageDraw.Draw(blob).ellipse([x - radius, y - radius, x + radius, y + radius], fill=int(rng.uniform(130, 210)))
    tinted = Image.eval(image, lambda v: int(v * 0.5 + 5))
    return Image.composite(tinted, image, blob.filter(ImageFilter.GaussianBlur(radius / 2)))


_DEFECTS = {"good": lambda image, rng, geometry: image, "scratch": _scratch, "dent": _dent,
            "crack": _crack, "stain": _stain}


def make_image(label: str, rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """One size x size x 3 uint8 image of class `label`."""
    canvas = int(size * 1.5)  # drawn larger and cropped after rotating, so no corner is left empty
    image, geometry = _washer(rng, canvas)
    image = _DEFECTS[label](image, rng, geometry).rotate(rng.uniform(0, 360), resample=Image.BILINEAR)
    margin = (canvas - size) // 2
    image = image.crop((margin, margin, margin + size, margin + size))
    gray = np.asarray(image, dtype=np.float32)
    tint = rng.uniform(0.9, 1.1, 3)  # slightly different white balance per image
    return np.clip(gray[:, :, None] * tint, 0, 255).astype(np.uint8)


def write_data_set(directory: str | Path, per_class: int = 60, size: int = 64, seed: int = 42) -> list[str]:
    """Write `per_class` PNG images per class into `directory/<class>/<class>_<n>.png`."""
    rng = np.random.default_rng(seed)
    written = []
    for label in CLASSES:
        folder = Path(directory) / label
        folder.mkdir(parents=True, exist_ok=True)
        for n in range(per_class):
            path = folder / f"{label}_{n:04d}.png"
            Image.fromarray(make_image(label, rng, size)).save(path)
            written.append(str(path))
    return written


def write_unlabelled(directory: str | Path, count: int, size: int = 64, seed: int = 43) -> list[str]:
    """Write `count` PNG images of random classes into `directory/part_<n>.png`, as new parts off
    a production line would arrive: no label in the path."""
    rng = np.random.default_rng(seed)
    Path(directory).mkdir(parents=True, exist_ok=True)
    written = []
    for n in range(count):
        path = Path(directory) / f"part_{n:05d}.png"
        Image.fromarray(make_image(CLASSES[rng.integers(len(CLASSES))], rng, size)).save(path)
        written.append(str(path))
    return written
