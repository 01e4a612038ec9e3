"""gen_confusion_matrix (numbers, colours, PNG, Parquet, interactive HTML),
get_dl_classifier_image_results and plot_dl_classifier_training_progress."""

import base64
import io
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from matplotlib.figure import Figure
from PIL import Image

import dlcls
from dlcls import errors
from dlcls.procedures import confusion
from dlcls.procedures.confusion import (
    cell_color,
    confusion_matrix_table,
    gen_confusion_matrix,
    gen_interactive_confusion_matrix,
    write_confusion_matrix_parquet,
)
from dlcls.procedures.image_results import get_dl_classifier_image_results
from dlcls.procedures.plots import (
    best_validation,
    error_axis_max,
    plot_dl_classifier_training_progress,
    rate_steps,
)


def random_labels(seed, names=("zebra", "ant", "moth", "bee", "cat")):
    """Ground truth and predictions (mostly right) with the classes in unsorted first appearance."""
    rng = np.random.default_rng(seed)
    names = list(names)[: int(rng.integers(2, len(names) + 1))]
    gt = [names[i] for i in rng.integers(0, len(names), int(rng.integers(5, 60)))]
    pred = [g if rng.random() < 0.6 else names[int(rng.integers(0, len(names)))] for g in gt]
    present = sorted(set(gt))
    return gt, [p if p in present else present[0] for p in pred]


def loop_matrix(gt, pred):
    classes = sorted(set(gt))
    matrix = [[0] * len(classes) for _ in classes]
    for g, p in zip(gt, pred):
        matrix[classes.index(p)][classes.index(g)] += 1
    return classes, matrix


def png_size(path) -> tuple[int, int]:
    with Image.open(path) as image:
        image.load()
        return image.size


# -- gen_confusion_matrix -----------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(6))
def test_matrix_matches_loops(seed):
    gt, pred = random_labels(seed)
    classes, expected = loop_matrix(gt, pred)
    assert gen_confusion_matrix(gt, pred).tolist() == expected
    relative = gen_confusion_matrix(gt, pred, "return_matrix", "relative")
    for col in range(len(classes)):
        total = sum(row[col] for row in expected)
        assert relative[:, col].tolist() == pytest.approx([row[col] / total for row in expected])
    assert gen_confusion_matrix(gt, pred, ["return_matrix"], ["none"]) is None


def test_integer_labels_and_descending_class_lists():
    gt = [3, 1, 1, 2, 3]
    pred = [[3, 1, 2], [2, 1, 3], [1, 2, 3], [2, 3, 1], [1, 2, 3]]  # apply_dl_classifier_batchwise's form
    assert gen_confusion_matrix(np.array(gt), pred).tolist() == loop_matrix(gt, [p[0] for p in pred])[1]


@pytest.mark.parametrize("args, error, text", [
    ((["a", "b"], ["a"]), errors.WrongParamValueError, "one of each"),
    (([], []), errors.WrongParamValueError, "at least one"),
    ((["a", "b"], ["a", "c"]), errors.WrongParamValueError, "never occur in the ground truth"),
    ((["a", 1], ["a", 1]), errors.WrongParamValueError, "not a mix"),
    ((["a", "b"], ["a", "b"], "display_matrix", "percent"), errors.WrongParamValueError, "display_matrix"),
    ((["a", "b"], ["a", "b"], "return_matrix", "both"), errors.WrongParamValueError, "return_matrix"),
    ((["a", "b"], ["a", "b"], "display_color", True), errors.WrongParamValueError, "display_color"),
    ((["a", "b"], ["a", "b"], "display_column_width", "wide"), errors.WrongParamValueError, "column_width"),
    ((["a", "b"], ["a", "b"], "colour", "true"), errors.UnknownParamError, "colour"),
    ((["a", "b"], ["a", "b"], ["display_color", "display_matrix"], ["true"]), errors.WrongParamValueError,
     "one value per name"),
])
def test_confusion_matrix_errors(args, error, text):
    with pytest.raises(error, match=text) as info:
        gen_confusion_matrix(*args)
    assert info.value.code == error.code


DIAGONAL_LEVELS = [(0.0, 0), (0.6, 0), (0.6001, 1), (0.8, 1), (0.81, 2), (0.9, 2), (0.91, 3), (0.95, 3), (0.96, 4),
                   (0.98, 4), (0.981, 5), (1.0, 5)]
OFF_DIAGONAL_LEVELS = [(0.0, 0), (1e-9, 1), (0.05, 1), (0.0501, 2), (0.1, 2), (0.15, 3), (0.2, 3), (0.21, 4),
                       (1.0, 4)]


def luminance(color: str) -> float:
    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return 0.299 * r + 0.587 * g + 0.114 * b


@pytest.mark.parametrize("diagonal, table, hue", [(True, DIAGONAL_LEVELS, 1), (False, OFF_DIAGONAL_LEVELS, 0)])
def test_halcon_colour_thresholds(diagonal, table, hue):
    by_level = {}
    for value, level in table:
        by_level.setdefault(level, set()).add(cell_color(value, diagonal))
    assert all(len(colors) == 1 for colors in by_level.values())  # one colour per threshold band
    colors = [by_level[level].pop() for level in sorted(by_level)]
    assert colors[0] == "#ffffff"
    assert [luminance(c) for c in colors] == sorted((luminance(c) for c in colors), reverse=True)  # deeper each band
    for c in colors[1:]:  # diagonal green, off-diagonal red
        channels = [int(c[i : i + 2], 16) for i in (1, 3, 5)]
        assert channels[hue] == max(channels)


@pytest.mark.parametrize("names, values", [
    ((), ()),
    (["display_matrix", "display_column_width"], ["relative", "equal"]),
    (["display_color"], ["false"]),
])
def test_confusion_png_is_written(tmp_path, names, values):
    gt, pred = random_labels(2)
    output = tmp_path / "sub" / "matrix.png"
    gen_confusion_matrix(gt, pred, names, values, output=str(output))
    width, height = png_size(output)
    assert width > 100 and height > 50


def color_box(pixels: np.ndarray, color: str) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the pixels of exactly this colour, checked to fill most of that box."""
    rgb = [int(color[i : i + 2], 16) for i in (1, 3, 5)]
    ys, xs = np.nonzero((pixels == rgb).all(axis=2))
    assert len(xs) > 200, f"no cell coloured {color}"
    box = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    assert len(xs) > 0.7 * (box[2] - box[0]) * (box[3] - box[1])  # one filled cell, not scattered pixels
    return box


def test_confusion_png_cells_have_halcon_colours(tmp_path):
    """Columns a, b (ground truth), rows a, b (predicted): a 20/20 right (relative 1.0), b 17/20
    right (0.85) and 3/20 predicted as a (0.15), nothing of a predicted as b."""
    gt, pred = ["a"] * 20 + ["b"] * 20, ["a"] * 20 + ["b"] * 17 + ["a"] * 3
    assert gen_confusion_matrix(gt, pred, output=str(tmp_path / "m.png")).tolist() == [[20, 3], [0, 17]]
    pixels = np.asarray(Image.open(tmp_path / "m.png").convert("RGB"))
    a_as_a, b_as_b = color_box(pixels, cell_color(1.0, True)), color_box(pixels, cell_color(0.85, True))
    b_as_a = color_box(pixels, cell_color(0.15, False))
    assert cell_color(1.0, True) == "#1a7f37" and cell_color(0.15, False) == "#ef6f5e"  # deep green, mid red
    assert a_as_a[2] <= b_as_b[0] and a_as_a[3] <= b_as_b[1]  # diagonal: top left, then bottom right
    assert abs(b_as_a[1] - a_as_a[1]) <= 2 and abs(b_as_a[0] - b_as_b[0]) <= 2  # row "a", column "b"
    assert pixels[b_as_b[1] + 3, a_as_a[0] + 3].tolist() == [255, 255, 255]  # b predicted, a ground truth: 0
    x0, y0, x1, y1 = a_as_a
    assert (pixels[y0:y1, x0:x1] == 255).all(axis=2).any()  # white text on the dark green
    gen_confusion_matrix(gt, pred, "display_color", "false", output=str(tmp_path / "plain.png"))
    plain = np.asarray(Image.open(tmp_path / "plain.png").convert("RGB"))
    for color in ("#1a7f37", "#b5e0a8", "#ef6f5e"):
        assert not (plain == [int(color[i : i + 2], 16) for i in (1, 3, 5)]).all(axis=2).any()


def test_given_classes_keep_a_class_missing_from_the_ground_truth(tmp_path):
    gt, pred = ["b", "a", "b", "a"], ["b", "c", "a", "a"]
    with pytest.raises(errors.WrongParamValueError, match=r"\['c'\] never occur in the ground truth.*pass classes="):
        gen_confusion_matrix(gt, pred)
    classes = ["c", "a", "b"]  # in the order given, e.g. the classifier's
    matrix = gen_confusion_matrix(gt, pred, classes=classes, output=str(tmp_path / "m.png"))
    assert matrix.tolist() == [[0, 1, 0], [0, 1, 1], [0, 0, 1]]  # rows predicted c, a, b; columns GT c, a, b
    relative = gen_confusion_matrix(gt, pred, "return_matrix", "relative", classes=classes)
    assert relative[:, 0].tolist() == [0, 0, 0] and relative[:, 1].tolist() == [0.5, 0.5, 0]
    uri = str(tmp_path / "cm.parquet")
    dlcls.write_confusion_matrix_parquet(matrix, classes, uri)  # the classes given go with the matrix
    rows = {(r["ground_truth"], r["predicted"]): r["count"] for r in pq.read_table(uri).to_pylist()}
    assert rows[("a", "c")] == 1 and rows[("b", "a")] == 1 and sum(rows.values()) == 4 and len(rows) == 9
    cells = gen_interactive_confusion_matrix(["x.png"] * 4, gt, pred, str(tmp_path / "p.html"), classes=classes)
    assert cells[("a", "c")] == [1]
    for bad, text in [(["a", "a", "b", "c"], "each class once"), (["a", "c"], r"\['b'\] are not in classes")]:
        with pytest.raises(errors.WrongParamValueError, match=text):
            gen_confusion_matrix(gt, pred, classes=bad)


def test_parquet_writer_is_exported():
    from dlcls import procedures

    assert dlcls.write_confusion_matrix_parquet is procedures.write_confusion_matrix_parquet
    assert procedures.write_confusion_matrix_parquet is write_confusion_matrix_parquet
    assert "write_confusion_matrix_parquet" in dlcls.__all__


def test_no_png_for_display_none_and_png_names_only(tmp_path):
    gen_confusion_matrix(["a"], ["a"], "display_matrix", "none", output=str(tmp_path / "m.png"))
    assert not (tmp_path / "m.png").exists()
    with pytest.raises(errors.WrongParamValueError, match=".png"):
        gen_confusion_matrix(["a"], ["a"], output=str(tmp_path / "m.jpg"))


def test_confusion_png_on_s3(s3_bucket):
    from dlcls.core import storage

    gen_confusion_matrix(["a", "b", "b"], ["a", "b", "a"], output=f"{s3_bucket}/views/matrix.png")
    data = storage.read_bytes(f"{s3_bucket}/views/matrix.png")
    assert Image.open(io.BytesIO(data)).size[0] > 0
    write_confusion_matrix_parquet(np.array([[1, 1], [0, 1]]), ["a", "b"], f"{s3_bucket}/cm.parquet")
    assert pq.read_table(io.BytesIO(storage.read_bytes(f"{s3_bucket}/cm.parquet")))["count"].to_pylist() == [1, 0, 1, 1]


# -- long-form Parquet --------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(3))
def test_long_form_parquet_reads_back(tmp_path, seed):
    gt, pred = random_labels(seed)
    classes, expected = loop_matrix(gt, pred)
    uri = str(tmp_path / "confusion.parquet")
    write_confusion_matrix_parquet(gen_confusion_matrix(gt, pred), classes, uri)
    table = pq.read_table(uri)
    assert table.column_names == ["ground_truth", "predicted", "count", "relative"]
    assert table.num_rows == len(classes) ** 2
    for row in table.to_pylist():
        g, p = classes.index(row["ground_truth"]), classes.index(row["predicted"])
        assert row["count"] == expected[p][g]
        assert row["relative"] == pytest.approx(expected[p][g] / sum(r[g] for r in expected))
    pd = pytest.importorskip("pandas")
    frame = pd.read_parquet(uri)
    pivot = frame.pivot(index="predicted", columns="ground_truth", values="count").loc[classes, classes]
    assert pivot.to_numpy().tolist() == expected


def test_table_input_and_shape_check(tmp_path):
    table = confusion_matrix_table(np.array([[2, 0], [1, 3]]), ["x", "y"])
    write_confusion_matrix_parquet(table, None, str(tmp_path / "t.parquet"))
    assert pq.read_table(str(tmp_path / "t.parquet")).equals(table)
    with pytest.raises(errors.WrongParamValueError, match="does not fit"):
        confusion_matrix_table(np.zeros((2, 2)), ["x", "y", "z"])


# -- interactive HTML ---------------------------------------------------------------------------

class PageParser(HTMLParser):
    """Matrix cells (row, column) -> link target and text; sections id -> figure indices/images."""

    def __init__(self):
        super().__init__()
        self.row = self.col = -1
        self.in_matrix = False
        self.links, self.texts, self.sections, self.images, self.headers = {}, {}, {}, {}, []
        self.section = None
        self.current = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self.in_matrix = True
        elif tag == "tr" and self.in_matrix:
            self.row, self.col = self.row + 1, -1
        elif tag in ("td", "th") and self.in_matrix:
            self.col += 1
            self.current = ("th" if tag == "th" else "td", self.row, self.col)
        elif tag == "a" and self.in_matrix and self.current[0] == "td":
            self.links[self.current[1:]] = attrs["href"]
        elif tag == "section":
            self.section = attrs["id"]
            self.sections[self.section] = []
        elif tag == "figure":
            self.sections[self.section].append(int(attrs["data-index"]))
        elif tag == "img":
            self.images[self.sections[self.section][-1]] = attrs["src"]

    def handle_endtag(self, tag):
        if tag == "table":
            self.in_matrix = False

    def handle_data(self, data):
        if self.in_matrix and self.current and data.strip():
            self.texts[self.current] = self.texts.get(self.current, "") + data.strip()


def write_images(tmp_path, count):
    rng = np.random.default_rng(0)
    files = []
    for i in range(count):
        path = tmp_path / f"img_{i}.png"
        Image.fromarray(rng.integers(0, 255, (40 + i, 50, 3), dtype=np.uint8)).save(path)
        files.append(str(path))
    return files


@pytest.mark.parametrize("seed", range(3))
def test_interactive_page_links_every_nonzero_cell_to_its_images(tmp_path, seed):
    gt, pred = random_labels(seed, names=("<b>&co", "ant", "moth's", "bee"))
    files = write_images(tmp_path, len(gt))
    (tmp_path / "img_0.png").write_text("not an image")  # unreadable: must become a link
    cells = gen_interactive_confusion_matrix(files, gt, pred, str(tmp_path / "page.html"))
    expected = {}
    for i, key in enumerate(zip(gt, pred)):
        expected.setdefault(key, []).append(i)
    assert cells == expected
    parser = PageParser()
    parser.feed((tmp_path / "page.html").read_text(encoding="utf-8"))
    classes, matrix = loop_matrix(gt, pred)
    assert [parser.texts[("th", 0, c + 1)] for c in range(len(classes))] == classes  # escaped names read back
    for p in range(len(classes)):
        for g in range(len(classes)):
            cell = (p + 1, g + 1)
            assert parser.texts[("td", *cell)] == str(matrix[p][g])
            if matrix[p][g] == 0:
                assert cell not in parser.links
                continue
            section = parser.links[cell].lstrip("#")
            assert parser.sections[section] == expected[(classes[g], classes[p])]
    assert 0 not in parser.images
    for index, source in parser.images.items():
        thumbnail = Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1])))
        assert max(thumbnail.size) <= 96 and index > 0


def test_interactive_page_thumbnail_cap_and_errors(tmp_path):
    files = write_images(tmp_path, 3)
    page = tmp_path / "page.html"
    gen_interactive_confusion_matrix(files, ["a", "b", "a"], ["a", "a", "b"], str(page),
                                     ["max_thumbnails", "display_matrix"], [1, "relative"])
    text = page.read_text()
    assert text.count("data:image/png;base64,") == 1  # the first image shown; the others are links
    links = [f"href='{Path(f).resolve().as_uri()}'" for f in files[1:]]  # absolute: the page may move
    assert text.count(links[0]) == 1 and text.count(links[1]) == 1
    assert "0.50" in text and "http" not in text  # relative values; no external assets
    with pytest.raises(errors.WrongParamValueError, match="one image per label"):
        gen_interactive_confusion_matrix(files[:2], ["a", "b", "a"], ["a", "a", "a"], str(page))
    with pytest.raises(errors.WrongParamValueError, match=".html"):
        gen_interactive_confusion_matrix(files, ["a", "b", "a"], ["a", "a", "a"], str(tmp_path / "p.htm"))
    with pytest.raises(errors.UnknownParamError):
        gen_interactive_confusion_matrix(files, ["a", "b", "a"], ["a", "a", "a"], str(page), "width", 3)


def test_interactive_page_embeds_arrays_and_never_links_scripts(tmp_path):
    images = [np.zeros((8, 8, 3), np.float32), "javascript:alert(1)"]
    gen_interactive_confusion_matrix(images, ["a", "b"], ["a", "b"], str(tmp_path / "p.html"))
    text = (tmp_path / "p.html").read_text()
    assert text.count("data:image/png;base64,") == 1 and "href='javascript" not in text
    assert confusion._thumbnail(str(tmp_path / "missing.png"), 32) is None


# -- get_dl_classifier_image_results ------------------------------------------------------------

def results_case(tmp_path):
    rng = np.random.default_rng(3)
    files = write_images(tmp_path, 12)
    images = files[:6] + [rng.uniform(-127, 128, (32, 32, 3)).astype(np.float32) for _ in range(3)] + [
        rng.integers(0, 255, (20, 30), dtype=np.uint8) for _ in range(2)] + [str(tmp_path / "missing.png")]
    names = ["good", "crack", "a_very_long_class_name_for_testing"]
    gt = [names[i] for i in rng.integers(0, 3, 12)]
    pred = [[g, "x"] if rng.random() < 0.5 else [names[int(rng.integers(0, 3))], "x"] for g in gt]
    conf = [[float(c), 0.0] for c in rng.random(12)]
    return images, gt, pred, conf


@pytest.mark.parametrize("filters", [
    {}, {"only_wrong": True}, {"ground_truth": "good"}, {"predicted": ["crack", "good"]},
    {"min_confidence": 0.3, "max_confidence": 0.7}, {"ground_truth": "crack", "only_wrong": True},
])
def test_image_result_filters_match_loops(tmp_path, filters):
    images, gt, pred, conf = results_case(tmp_path)
    records = get_dl_classifier_image_results(images, gt, pred, conf, **filters)
    wanted = []
    for i in range(12):
        keep = (not filters.get("only_wrong") or gt[i] != pred[i][0])
        keep &= filters.get("ground_truth") in (None, gt[i])
        keep &= "predicted" not in filters or pred[i][0] in filters["predicted"]
        keep &= filters.get("min_confidence", 0) <= conf[i][0] <= filters.get("max_confidence", 1)
        if keep:
            wanted.append(i)
    assert [r["index"] for r in records] == wanted
    for r in records:
        assert (r["ground_truth"], r["predicted"], r["confidence"]) == (gt[r["index"]], pred[r["index"]][0],
                                                                         conf[r["index"]][0])
        assert r["correct"] == (r["ground_truth"] == r["predicted"])
        assert r["image"] is images[r["index"]]


def test_gallery_png(tmp_path):
    images, gt, pred, conf = results_case(tmp_path)
    output = tmp_path / "gallery.png"
    records = get_dl_classifier_image_results(images, gt, pred, conf, output=str(output), max_images=11)
    assert len(records) == 12
    width, height = png_size(output)
    assert width > 500 and height > 400
    get_dl_classifier_image_results(images, gt, pred, conf, ground_truth="none", output=str(tmp_path / "empty.png"))
    assert png_size(tmp_path / "empty.png")[0] > 0


@pytest.mark.parametrize("kwargs, text", [
    ({"min_confidence": 0.8, "max_confidence": 0.2}, "above"),
    ({"min_confidence": "high"}, "finite number"),
    ({"max_images": 0}, "integer >= 1"),
    ({"output": "gallery.jpg"}, ".png"),
])
def test_image_result_errors(tmp_path, kwargs, text):
    images, gt, pred, conf = results_case(tmp_path)
    with pytest.raises(errors.WrongParamValueError, match=text):
        get_dl_classifier_image_results(images, gt, pred, conf, **kwargs)
    with pytest.raises(errors.WrongParamValueError, match="one of each per image"):
        get_dl_classifier_image_results(images, gt[:-1], pred, conf)


# -- plot_dl_classifier_training_progress -------------------------------------------------------

@pytest.mark.parametrize("percent, top", [(0.0, 0.1), (0.04, 0.1), (0.3, 0.3), (0.37, 0.4), (0.999, 1.0),
                                          (1.0, 1.0), (7.000000000000001, 7.0), (12.3, 13.0), (100.0, 100.0)])
def test_error_axis_top(percent, top):
    assert error_axis_max(percent) == top


def test_progress_plot_content(tmp_path):
    epochs = [0.5, 1.0, 1.5, 2.0, 2.5]
    training, validation = [0.5, 0.3, 0.2, 0.15, 0.07], [0.6, 0.1, 0.3, 0.1, 0.2]
    rates = [1e-3, 1e-3, 1e-4, 1e-4, 1e-5]
    figure = plot_dl_classifier_training_progress(training, validation, rates, epochs, 4, str(tmp_path / "p.png"))
    assert isinstance(figure, Figure) and png_size(tmp_path / "p.png")[0] > 500
    ax, right = figure.axes
    assert ax.get_ylim() == (0, 60.0) and ax.get_xlim() == (0, 4)
    lines = {line.get_label(): line for line in ax.get_lines() + right.get_lines()}
    assert lines["training error"].get_color() == "magenta"
    assert lines["validation error"].get_color() == "gold"
    assert lines["learning rate"].get_color() == "darkturquoise"
    assert list(lines["validation error"].get_ydata()) == pytest.approx([60, 10, 30, 10, 20])
    assert lines["learning rate"].get_drawstyle() == "steps-pre"  # rates[i] spans the interval up to epochs[i]
    assert list(lines["learning rate"].get_xdata()) == [0, 0.5, 1.0, 1.5, 2.0, 2.5]
    assert list(lines["learning rate"].get_ydata()) == [1e-3, 1e-3, 1e-3, 1e-4, 1e-4, 1e-5]
    assert right.get_yscale() == "log"  # 1e-3 .. 1e-5: linearly, 1e-5 would lie on the 0 line
    assert right.yaxis.get_major_formatter()(1e-3).replace("\u2212", "-") == "1.0e-03"  # matplotlib's minus sign
    assert best_validation(validation) == 3  # lowest, last occurrence
    summary = figure.texts[0].get_text()
    for expected in ["10.00 % (epoch 2)", "15.00 %", "1.0e-05", "2.5 of 4"]:
        assert expected in summary


def test_progress_plot_single_point_is_a_cross_and_defaults():
    figure = plot_dl_classifier_training_progress([0.07], [], 0.01, [1])
    ax, right = figure.axes
    assert ax.get_ylim() == (0, 7.0) and ax.get_xlim() == (0, 1)  # num_epochs None: the largest epoch
    (line,) = ax.get_lines()
    assert line.get_marker() == "x" and line.get_linestyle() == "None"
    assert right.get_lines()[0].get_marker() == "x"
    assert "Best validation" not in figure.texts[0].get_text()


@pytest.mark.parametrize("epochs, rates, x, scale", [
    ([1, 2, 3], [0.1, 0.1, 0.01], [0, 1, 2, 3], "linear"),  # a factor 10: still linear
    ([11, 12, 13], [0.1, 0.01, 0.001], [10, 11, 12, 13], "log"),  # resumed: the first step from epoch 10
    ([0.25, 2, 4], [0.1, 0.1, 0.0], [0, 0.25, 2, 4], "linear"),  # a zero rate has no log
])
def test_learning_rate_steps(tmp_path, epochs, rates, x, scale):
    assert rate_steps(epochs, rates) == (x, [rates[0], *rates])
    figure = plot_dl_classifier_training_progress([], [], rates, epochs, output=str(tmp_path / "lr.png"))
    right = figure.axes[1]
    (line,) = right.get_lines()
    assert line.get_drawstyle() == "steps-pre" and list(line.get_xdata()) == x
    assert right.get_yscale() == scale and right.get_ylim()[0] <= min(rates)  # every step in view


def test_progress_plot_output_is_a_keyword(tmp_path):
    plot_dl_classifier_training_progress([0.2, 0.1], [0.3, 0.2], [1e-3, 1e-3], [1, 2], output=str(tmp_path / "p.png"))
    assert png_size(tmp_path / "p.png")[0] > 500
    with pytest.raises(errors.WrongParamValueError, match="pass the PNG as output="):
        plot_dl_classifier_training_progress([0.2, 0.1], [0.3, 0.2], [1e-3, 1e-3], [1, 2], str(tmp_path / "p.png"))


@pytest.mark.parametrize("args, text", [
    (([0.1], [0.1], [0.1], ["one"]), "epochs must be finite numbers"),
    (([0.1], ["x"], [0.1], [1]), "validation_errors must be finite numbers"),
    (([float("nan")], [0.1], [0.1], [1]), "training_errors"),
    (([True], [0.1], [0.1], [1]), "training_errors"),
    (([0.1], [0.1], [0.1], [1], "ten"), "num_epochs"),
    (([0.1, 0.2], [0.1], [0.1], [1]), "one per epoch"),
    (([], [], [], []), "epochs is empty"),
    (([0.1], [0.1], [0.1], [1], None, "plot.svg"), ".png"),
])
def test_progress_plot_errors(args, text):
    with pytest.raises(errors.WrongParamValueError, match=text):
        plot_dl_classifier_training_progress(*args)


def test_displays_never_load_pyplot(tmp_path):
    code = (
        "import sys, numpy as np\n"
        "from dlcls.procedures import plots, confusion, heatmap, image_results\n"
        f"plots.plot_dl_classifier_training_progress([0.1, 0.05], [0.2, 0.1], [1e-3, 1e-3], [1, 2], "
        f"output={str(tmp_path / 'p.png')!r})\n"
        f"confusion.gen_confusion_matrix(['a', 'b'], ['a', 'a'], output={str(tmp_path / 'c.png')!r})\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
