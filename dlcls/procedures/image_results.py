"""get_dl_classifier_image_results: pick images by ground truth, prediction, correctness and
confidence (e.g. every 'good' image classified as 'crack'), optionally as a gallery PNG in which
each image carries its ground truth, prediction and confidence, wrong ones framed in red."""

import functools
import math
from collections.abc import Callable

from PIL import Image, ImageDraw, ImageFont

from .. import errors
from . import display
from .confusion import top1_labels
from .genparams import as_list, int_at_least

_SIDE = 160  # pixels of a tile's image area
_LINE = 18  # pixels per caption line
_BORDER = 4
_COLUMNS = 5
_WRONG, _RIGHT, _TEXT = (200, 30, 30), (150, 150, 150), (20, 20, 20)


def get_dl_classifier_image_results(image_files_or_arrays, ground_truth_labels, predicted_classes, confidences,
                                    ground_truth=None, predicted=None, only_wrong: bool = False,
                                    min_confidence: float | None = None, max_confidence: float | None = None,
                                    output=None, max_images: int = 60) -> list[dict]:
    """Records {index, image, ground_truth, predicted, confidence, correct} of the images that pass
    every filter: `ground_truth` / `predicted` a class or list of classes, `only_wrong`,
    confidence within [min_confidence, max_confidence]. Predictions and confidences are per image
    the top-1 value or the descending list of apply_dl_classifier_batchwise. With `output` (.png
    path or URL) the first `max_images` selected images are drawn as a gallery."""
    max_images = int_at_least(1)(max_images)
    if output is not None:
        display.check_output(output)
    tests = _filters(ground_truth, predicted, only_wrong, min_confidence, max_confidence)
    selected = [r for r in _records(image_files_or_arrays, ground_truth_labels, predicted_classes, confidences)
                if all(test(r) for test in tests)]
    if output is not None:
        display.write(output, display.image_png(render_gallery(selected[:max_images])))
    return selected


def _records(images, ground_truth_labels, predicted_classes, confidences) -> list[dict]:
    images = list(images) if isinstance(images, (list, tuple)) or getattr(images, "ndim", 0) == 4 else [images]
    gt = top1_labels(ground_truth_labels, "ground_truth_labels")
    pred = top1_labels(predicted_classes, "predicted_classes")
    conf = [_confidence(c) for c in top1_labels(confidences, "confidences")]
    if not len(images) == len(gt) == len(pred) == len(conf):
        raise errors.WrongParamValueError(
            f"got {len(images)} images, {len(gt)} ground-truth labels, {len(pred)} predicted classes and "
            f"{len(conf)} confidences: give one of each per image")
    return [{"index": i, "image": image, "ground_truth": g, "predicted": p, "confidence": c, "correct": g == p}
            for i, (image, g, p, c) in enumerate(zip(images, gt, pred, conf))]


def _confidence(value, what: str = "confidence") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise errors.WrongParamValueError(f"{what} must be a finite number, got {value!r}")
    return float(value)


def _filters(ground_truth, predicted, only_wrong: bool, low, high) -> list[Callable[[dict], bool]]:
    low = -math.inf if low is None else _confidence(low, "min_confidence")
    high = math.inf if high is None else _confidence(high, "max_confidence")
    if low > high:
        raise errors.WrongParamValueError(f"min_confidence {low} is above max_confidence {high}")
    tests = [lambda r: low <= r["confidence"] <= high]
    for field, wanted in (("ground_truth", ground_truth), ("predicted", predicted)):
        if wanted is not None:
            tests.append(_member(field, set(as_list(wanted))))
    if only_wrong:
        tests.append(lambda r: not r["correct"])
    return tests


def _member(field: str, wanted: set) -> Callable[[dict], bool]:
    return lambda record: record[field] in wanted


# -- gallery ----------------------------------------------------------------------------------

def render_gallery(records: list[dict]) -> Image.Image:
    """A grid of tiles: the image, then '#index GT', 'predicted', 'confidence'; wrong ones in red."""
    font = _font()
    if not records:
        canvas = Image.new("RGB", (360, 48), "white")
        ImageDraw.Draw(canvas).text((12, 16), "no image matches the filters", fill=_TEXT, font=font)
        return canvas
    width, height = _SIDE + 2 * _BORDER, _SIDE + 2 * _BORDER + 3 * _LINE + 6
    columns = min(_COLUMNS, len(records))
    canvas = Image.new("RGB", (columns * (width + 8) + 8, math.ceil(len(records) / columns) * (height + 8) + 8),
                       "white")
    for k, record in enumerate(records):
        row, column = divmod(k, columns)
        canvas.paste(_tile(record, width, height, font), (8 + column * (width + 8), 8 + row * (height + 8)))
    return canvas


def _tile(record: dict, width: int, height: int, font) -> Image.Image:
    tile = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(tile)
    frame = _RIGHT if record["correct"] else _WRONG
    draw.rectangle((0, 0, width - 1, _SIDE + 2 * _BORDER - 1), outline=frame, width=_BORDER if frame == _WRONG else 1)
    picture = _picture(record["image"])
    tile.paste(picture, (_BORDER + (_SIDE - picture.width) // 2, _BORDER + (_SIDE - picture.height) // 2))
    lines = [(f"#{record['index']}  GT: {record['ground_truth']}", _TEXT),
             (f"predicted: {record['predicted']}", _TEXT if record["correct"] else _WRONG),
             (f"confidence: {record['confidence']:.3f}", _TEXT)]
    for row, (text, color) in enumerate(lines):
        draw.text((2, _SIDE + 2 * _BORDER + 4 + row * _LINE), _fit(draw, text, font, width - 4), fill=color, font=font)
    return tile


def _picture(item) -> Image.Image:
    """The image scaled to the tile (small ones enlarged without smoothing, so pixels stay visible)."""
    try:
        image = display.to_pil(item).convert("RGB")
    except (OSError, ValueError, TypeError, Image.DecompressionBombError):
        image = Image.new("RGB", (_SIDE, _SIDE), (225, 225, 225))
        ImageDraw.Draw(image).text((10, _SIDE // 2 - 8), "cannot display", fill=_TEXT, font=_font())
        return image
    scale = _SIDE / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.NEAREST if scale > 1 else Image.Resampling.LANCZOS)


@functools.cache
def _font() -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=13)


def _fit(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> str:
    """The text, shortened with an ellipsis until it fits `width` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"

