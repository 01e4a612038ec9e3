"""gen_confusion_matrix and its companions: the matrix as numbers, a PNG coloured as HALCON
colours it, a long-form Parquet table, and an HTML page whose cells link to their images.

HALCON's layout throughout: rows = predicted class, columns = ground truth; the classes are the
sorted unique ground-truth labels, or the `classes=` given (e.g. the classifier's, where a split's
floors left a small class out of the ground truth while the classifier still predicts it).
"""

import base64
import html
import io
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote, urlsplit

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from matplotlib.patches import Rectangle
from PIL import Image

from .. import errors
from ..core import metrics, storage
from . import display
from .genparams import GenParam, int_at_least, one_of, parse

_PARAMS = {
    "display_matrix": GenParam("absolute", one_of("absolute", "relative", "none")),
    "return_matrix": GenParam("absolute", one_of("absolute", "relative", "none")),
    "display_color": GenParam("true", one_of("true", "false")),
    "display_column_width": GenParam("minimal", one_of("minimal", "equal")),
}
_INTERACTIVE_PARAMS = {
    "display_matrix": GenParam("absolute", one_of("absolute", "relative")),
    "display_color": GenParam("true", one_of("true", "false")),
    "thumbnail_size": GenParam(96, int_at_least(16)),
    "max_thumbnails": GenParam(1000, int_at_least(0)),  # embedded ones; the rest are links, so the page stays small
}
_MAX_FILE_BYTES = 32 * 2**20  # larger files are linked, not decoded for a thumbnail
_UNSAFE_SCHEMES = {"javascript", "vbscript", "data"}  # file names are never made into links that run code

# HALCON's colour coding by relative value, first match wins: the diagonal gets greener above
# 0.60/0.80/0.90/0.95/0.98, other cells redder above 0/0.05/0.10/0.20.
_DIAGONAL_COLORS = ((0.98, "#1a7f37"), (0.95, "#3fae5a"), (0.90, "#7cc97f"), (0.80, "#b5e0a8"), (0.60, "#e2f3d7"))
_OFF_DIAGONAL_COLORS = ((0.20, "#c62828"), (0.10, "#ef6f5e"), (0.05, "#f7a89a"), (0.0, "#fcdcd5"))
_NEUTRAL = "#ffffff"
_DARK = {"#1a7f37", "#c62828"}  # backgrounds that need white text


def gen_confusion_matrix(ground_truth_labels, predicted_classes, gen_param_name=(), gen_param_value=(),
                         output=None, *, classes: Sequence | None = None):
    """The confusion matrix (absolute counts by default, 'relative', or None for 'none'); with
    `output` (a .png path or URL) and display_matrix other than 'none', also its picture.
    `classes`: the matrix's classes in their order, instead of HALCON's sorted unique ground-truth
    labels; every label must be one of them, and a class without ground truth gets an empty column.
    write_confusion_matrix_parquet(matrix, classes, uri) takes the matrix with that class list."""
    settings = parse(gen_param_name, gen_param_value, _PARAMS)
    if output is not None:
        display.check_output(output)
    classes, matrix = label_confusion_matrix(ground_truth_labels, predicted_classes, classes)
    if output is not None and settings["display_matrix"] != "none":
        display.write(output, render_confusion_matrix(matrix, classes, settings["display_matrix"],
                                                      settings["display_color"] == "true",
                                                      settings["display_column_width"]))
    return {"absolute": matrix, "relative": metrics.relative_confusion_matrix(matrix), "none": None}[
        settings["return_matrix"]]


def top1_labels(values, what: str) -> list:
    """Labels as a list; an entry that is itself a list (the descending class list that
    apply_dl_classifier_batchwise gives per image) stands for its first, top-1, class."""
    values = values.tolist() if isinstance(values, np.ndarray) else values
    values = [values] if isinstance(values, (str, int)) else list(values)
    labels = [v[0] if isinstance(v, (list, tuple)) and v else v for v in values]
    if any(isinstance(v, (list, tuple)) for v in labels):
        raise errors.WrongParamValueError(f"{what} holds an empty class list; give one class per image")
    return [v.item() if isinstance(v, np.generic) else v for v in labels]


def label_pairs(ground_truth_labels, predicted_classes) -> tuple[list, list]:
    """Both label lists, checked to pair up one to one."""
    gt, pred = top1_labels(ground_truth_labels, "ground_truth_labels"), top1_labels(predicted_classes,
                                                                                    "predicted_classes")
    if len(gt) != len(pred) or not gt:
        raise errors.WrongParamValueError(
            f"got {len(gt)} ground-truth labels and {len(pred)} predicted classes: give one of each per image, "
            "at least one image")
    return gt, pred


def label_confusion_matrix(ground_truth_labels, predicted_classes,
                           classes: Sequence | None = None) -> tuple[list, np.ndarray]:
    """(classes, K x K counts with rows predicted, columns GT); classes default to the sorted
    unique ground-truth labels."""
    return _matrix(*label_pairs(ground_truth_labels, predicted_classes), classes)


def _matrix(gt: list, pred: list, classes: Sequence | None = None) -> tuple[list, np.ndarray]:
    if classes is None:
        classes = _sorted_unique(gt)
        _check_known(pred, classes, "predicted classes {} never occur in the ground truth, whose sorted labels are "
                     "the matrix's classes {} (HALCON's choice): pass classes= with every class (e.g. the "
                     "classifier's 'classes') to keep them as empty columns, or evaluate on images of every class "
                     "the classifier predicts")
    else:
        classes = _given_classes(classes)
        _check_known(gt + pred, classes, "labels {} are not in classes {}: add them to classes, or leave classes "
                     "out to use the sorted ground-truth labels")
    index = {c: i for i, c in enumerate(classes)}
    return classes, metrics.confusion_matrix([index[g] for g in gt], [index[p] for p in pred], len(classes))


def _given_classes(classes: Sequence) -> list:
    classes = top1_labels(classes, "classes")
    if not classes or len(set(classes)) != len(classes):
        raise errors.WrongParamValueError(f"classes must name each class once, got {classes}")
    return classes


def _check_known(labels: list, classes: list, message: str) -> None:
    unknown = set(labels) - set(classes)
    if unknown:
        raise errors.WrongParamValueError(message.format(sorted(map(str, unknown)), classes))


def _sorted_unique(labels: list) -> list:
    try:
        return sorted(set(labels))
    except TypeError:
        raise errors.WrongParamValueError("labels must be all class names or all class indices, not a mix") from None


def cell_color(relative: float, diagonal: bool) -> str:
    """HALCON's colour of a cell with this relative value (its share of the ground-truth column)."""
    for threshold, color in _DIAGONAL_COLORS if diagonal else _OFF_DIAGONAL_COLORS:
        if relative > threshold:
            return color
    return _NEUTRAL


def _cell_texts(matrix: np.ndarray, relative: np.ndarray, shown: str) -> list[list[str]]:
    values = matrix if shown == "absolute" else relative
    return [[f"{v:d}" if shown == "absolute" else f"{v:.2f}" for v in row] for row in values.tolist()]


# -- PNG --------------------------------------------------------------------------------------

_CHAR = 0.11  # inches per character of a 10 pt label: columns are sized in characters
_ROW = 0.32  # inches per matrix row


def render_confusion_matrix(matrix: np.ndarray, classes: Sequence, shown: str = "absolute", color: bool = True,
                            column_width: str = "minimal") -> bytes:
    """PNG of the matrix: ground-truth names across the top, predictions down the side."""
    relative = metrics.relative_confusion_matrix(matrix)
    texts, names = _cell_texts(matrix, relative, shown), [str(c) for c in classes]
    widths = _column_widths(names, texts, column_width)
    edges = np.concatenate([[0], np.cumsum(widths)])
    figure = display.new_figure(edges[-1] * _CHAR, len(names) * _ROW)
    ax = figure.add_axes((0, 0, 1, 1))
    for (row, col), text in np.ndenumerate(np.array(texts, dtype=object)):
        background = cell_color(relative[row, col], row == col) if color else _NEUTRAL
        ax.add_patch(Rectangle((edges[col], row), widths[col], 1, facecolor=background, edgecolor="#9e9e9e"))
        ax.text((edges[col] + edges[col + 1]) / 2, row + 0.5, text, ha="center", va="center", fontsize=10,
                color="white" if background in _DARK else "black")
    _label_axes(ax, names, edges, shown)
    return display.figure_png(figure)


def _column_widths(names: list[str], texts: list[list[str]], mode: str) -> np.ndarray:
    """Characters per column: 'minimal' fits each column's name and values, 'equal' the widest."""
    widths = np.array([max([len(n), 3] + [len(row[i]) for row in texts]) + 2 for i, n in enumerate(names)], dtype=float)
    return np.full_like(widths, widths.max()) if mode == "equal" else widths


def _label_axes(ax, names: list[str], edges: np.ndarray, shown: str) -> None:
    ax.set_xlim(0, edges[-1])
    ax.set_ylim(len(names), 0)  # first class at the top
    ax.xaxis.tick_top()
    ax.xaxis.set_label_position("top")
    ax.set_xticks((edges[:-1] + edges[1:]) / 2, names)
    ax.set_yticks(np.arange(len(names)) + 0.5, names)
    ax.tick_params(length=0, labelsize=10)
    ax.set_xlabel("Ground truth", fontsize=11, fontweight="bold", labelpad=8)
    ax.set_ylabel("Predicted", fontsize=11, fontweight="bold", labelpad=8)
    for spine in ax.spines.values():
        spine.set_visible(False)
    caption = "counts" if shown == "absolute" else "share of each ground-truth class (columns sum to 1)"
    ax.annotate(caption, (0.5, 0), xycoords="axes fraction", xytext=(0, -8), textcoords="offset points",
                ha="center", va="top", fontsize=9, color="#555555")


# -- Parquet ----------------------------------------------------------------------------------

def confusion_matrix_table(matrix_abs, classes: Sequence) -> pa.Table:
    """Long form, one row per (ground truth, predicted) pair, ground truth major: columns
    ground_truth, predicted, count (int64), relative (share of the ground-truth class, float64)."""
    matrix = np.asarray(matrix_abs, dtype=np.int64)
    if matrix.shape != (len(classes), len(classes)):
        raise errors.WrongParamValueError(f"a {matrix.shape} matrix does not fit {len(classes)} classes")
    relative = metrics.relative_confusion_matrix(matrix)
    gt, pred = (a.ravel() for a in np.indices(matrix.shape))
    return pa.table({
        "ground_truth": pa.array([classes[g] for g in gt]),
        "predicted": pa.array([classes[p] for p in pred]),
        "count": pa.array(matrix[pred, gt], type=pa.int64()),
        "relative": pa.array(relative[pred, gt], type=pa.float64()),
    })


def write_confusion_matrix_parquet(table_or_matrix, classes: Sequence | None, uri: str) -> None:
    """Write the long-form table (or build it from an absolute matrix and its classes) to `uri`.
    For gen_confusion_matrix's matrix the classes are the `classes=` it was given, else the sorted
    unique ground-truth labels, sorted(set(ground_truth_labels))."""
    table = table_or_matrix if isinstance(table_or_matrix, pa.Table) else confusion_matrix_table(
        table_or_matrix, classes)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    storage.write_bytes_atomic(uri, buffer.getvalue())


# -- interactive HTML -------------------------------------------------------------------------

def gen_interactive_confusion_matrix(image_files, ground_truth_labels, predicted_classes, output_html,
                                     gen_param_name=(), gen_param_value=(), *,
                                     classes: Sequence | None = None) -> dict:
    """HALCON lets the user click a cell to see its images; dlcls writes a self-contained HTML page
    (`output_html`, a .html path or URL) in which each non-zero count links to the thumbnails of
    its images. Images are files (paths or URLs) or arrays. Returns {(ground truth, predicted):
    [image indices]} for every non-zero cell. Generic parameters: display_matrix, display_color,
    thumbnail_size (pixels, 96), max_thumbnails (embedded at most, 1000; the rest are links).
    `classes` as for gen_confusion_matrix."""
    settings = parse(gen_param_name, gen_param_value, _INTERACTIVE_PARAMS)
    display.check_output(output_html, ".html")
    gt, pred = label_pairs(ground_truth_labels, predicted_classes)
    classes, matrix = _matrix(gt, pred, classes)
    files = list(image_files)
    if len(files) != len(gt):
        raise errors.WrongParamValueError(f"got {len(files)} images for {len(gt)} labels; give one image per label")
    cells: dict = {}
    for i, key in enumerate(zip(gt, pred)):
        cells.setdefault(key, []).append(i)
    display.write(output_html, _page(files, classes, matrix, cells, settings).encode("utf-8"), ".html")
    return cells


def _page(files: list, classes: list, matrix: np.ndarray, cells: dict, settings: dict) -> str:
    index = {c: i for i, c in enumerate(classes)}
    order = sorted(cells, key=lambda key: (index[key[0]], index[key[1]]))  # column by column, as in the matrix
    shown = [i for key in order for i in cells[key]]
    embedded = set(shown[: settings["max_thumbnails"]])
    sections = [_section(files, key, cells[key], index, settings["thumbnail_size"], embedded) for key in order]
    return _PAGE.format(style=_STYLE, matrix=_matrix_table(classes, matrix, settings), sections="\n".join(sections))


def _cell_id(gt_index: int, pred_index: int) -> str:
    return f"cell-gt{gt_index}-pred{pred_index}"


def _matrix_table(classes: list, matrix: np.ndarray, settings: dict) -> str:
    relative = metrics.relative_confusion_matrix(matrix)
    texts = _cell_texts(matrix, relative, settings["display_matrix"])
    names = [html.escape(str(c)) for c in classes]
    rows = ["<tr><th class='corner'>predicted &#8595; / ground truth &#8594;</th>"
            + "".join(f"<th>{n}</th>" for n in names) + "</tr>"]
    for p, name in enumerate(names):
        cells = "".join(_matrix_cell(texts[p][g], matrix[p, g], relative[p, g], g, p, settings)
                        for g in range(len(names)))
        rows.append(f"<tr><th>{name}</th>{cells}</tr>")
    return "<table class='matrix'>" + "\n".join(rows) + "</table>"


def _matrix_cell(text: str, count: int, relative: float, g: int, p: int, settings: dict) -> str:
    background = cell_color(relative, g == p) if settings["display_color"] == "true" else _NEUTRAL
    foreground = "#ffffff" if background in _DARK else "#000000"
    content = f"<a href='#{_cell_id(g, p)}'>{text}</a>" if count else text
    return f"<td style='background:{background};color:{foreground}'>{content}</td>"


def _section(files: list, key: tuple, members: list[int], index: dict, size: int, embedded: set) -> str:
    gt, pred = key
    figures = "".join(_figure(files[i], i, size, i in embedded) for i in members)
    return (f"<section id='{_cell_id(index[gt], index[pred])}'><h2>ground truth <b>{html.escape(str(gt))}</b>, "
            f"predicted <b>{html.escape(str(pred))}</b>: {len(members)} image(s)</h2>"
            f"<div class='images'>{figures}</div><p><a href='#top'>back to the matrix</a></p></section>")


def _figure(item, i: int, size: int, embed: bool) -> str:
    """One image: an embedded thumbnail where allowed and readable, else a link to the file."""
    name = html.escape(str(item) if display.is_uri(item) else f"image {i}")
    source = _thumbnail(item, size) if embed else None
    if source:
        body = f"<img src='{source}' alt='{name}'>"
    elif display.is_uri(item) and urlsplit(str(item)).scheme.lower() not in _UNSAFE_SCHEMES:
        body = f"<a href='{html.escape(_href(item))}'>{name}</a>"
    else:
        body = "<span>(no thumbnail)</span>"
    return f"<figure data-index='{i}'>{body}<figcaption>{i}: {name}</figcaption></figure>"


def _href(item) -> str:
    """A link target that works from wherever the page is opened: local paths as absolute file://
    URIs, other URLs percent-quoted (so '#', '?' and '%' in names survive)."""
    if "://" not in str(item):
        return Path(item).resolve().as_uri()
    return quote(str(item), safe=":/")


def _thumbnail(item, size: int) -> str | None:
    """A base64 PNG data URI, or None when the item is not a readable image of bounded size."""
    try:
        if display.is_uri(item):
            fs, path = storage.filesystem(item)
            if fs.size(path) > _MAX_FILE_BYTES:
                return None
        image = display.to_pil(item)
        image.thumbnail((size, size))
    except (OSError, ValueError, TypeError, Image.DecompressionBombError):
        return None
    return "data:image/png;base64," + base64.b64encode(display.image_png(image)).decode("ascii")


_STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table.matrix { border-collapse: collapse; margin: 1em 0; }
table.matrix th, table.matrix td { border: 1px solid #9e9e9e; padding: 0.35em 0.8em; text-align: center; }
table.matrix th.corner { font-weight: normal; font-size: 0.8em; color: #555; }
table.matrix td a { color: inherit; font-weight: bold; }
section { border-top: 1px solid #ddd; margin-top: 1.5em; }
h2 { font-size: 1.05em; font-weight: normal; }
div.images { display: flex; flex-wrap: wrap; gap: 0.6em; }
figure { margin: 0; max-width: 12em; font-size: 0.75em; word-break: break-all; }
figure img { display: block; border: 1px solid #ccc; image-rendering: pixelated; }
"""

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Confusion matrix</title><style>{style}</style></head>
<body><h1 id="top">Confusion matrix</h1>
<p>Rows: predicted class; columns: ground truth. Click a count to see its images.</p>
{matrix}
{sections}
</body></html>
"""
