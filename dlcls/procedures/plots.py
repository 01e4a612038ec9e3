"""plot_dl_classifier_training_progress: training and validation error (in %) and the learning
rate (right axis, steps) against the epoch, with the best validation error marked and summarised.
Drawn on a dark background like HALCON's window, where its colours (magenta, gold, dark
turquoise) read well.

learning_rates[i] is the rate the epochs up to epochs[i] trained with, so its step spans the
interval that ends at epochs[i] (from the previous point; the first from one interval earlier).
Rates spanning more than a factor LOG_RATE_SPAN get a log axis, where 1e-3 and 1e-5 both show."""

import math
import os

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import NullFormatter, StrMethodFormatter

from .. import errors
from . import display
from .genparams import as_list

_TRAINING, _VALIDATION, _LEARNING_RATE = "magenta", "gold", "darkturquoise"
_BACKGROUND, _PLOT_AREA, _FOREGROUND = "#202124", "#000000", "#e0e0e0"
LOG_RATE_SPAN = 10


def plot_dl_classifier_training_progress(training_errors, validation_errors, learning_rates, epochs,
                                         num_epochs=None, output=None) -> Figure:
    """Errors are fractions (0.05 = 5 %), one per entry of `epochs`, or empty to leave a curve out;
    num_epochs (None: the largest epoch) ends the x axis. Writes a PNG to `output` (.png path or
    URL; a keyword, as HALCON's order puts num_epochs first) when given and returns the Figure."""
    if isinstance(num_epochs, (str, os.PathLike)):
        raise errors.WrongParamValueError(f"num_epochs must be a number, got {num_epochs!r}: pass the PNG as "
                                          "output=..., or num_epochs=None before it")
    if output is not None:
        display.check_output(output)
    epochs = _numbers(epochs, "epochs")
    if not epochs:
        raise errors.WrongParamValueError("epochs is empty: give the epoch of every plotted point")
    training, validation, rates = (_series(values, name, len(epochs)) for values, name in (
        (training_errors, "training_errors"), (validation_errors, "validation_errors"),
        (learning_rates, "learning_rates")))
    last = max(epochs) if num_epochs is None or as_list(num_epochs) == [] else _numbers(num_epochs, "num_epochs")[0]
    figure = _draw(epochs, [100 * e for e in training], [100 * e for e in validation], rates, max(last, *epochs))
    if output is not None:
        display.write(output, display.figure_png(figure))
    return figure


def error_axis_max(max_percent: float) -> float:
    """The left axis's top: the largest error in % rounded up to a whole percent, or below 1 % to
    a tenth, at least 0.1. Rounded to 9 places first, so that 7.000000000000001 counts as 7."""
    value = round(max_percent, 9)
    return float(math.ceil(value)) if value >= 1 else max(0.1, math.ceil(round(value * 10, 9)) / 10)


def best_validation(validation: list[float]) -> int:
    """The index of the lowest validation error, its last occurrence."""
    return len(validation) - 1 - int(np.argmin(validation[::-1]))


def _numbers(values, name: str) -> list[float]:
    values = values.tolist() if isinstance(values, np.ndarray) else as_list(values)
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or not math.isfinite(v):
            raise errors.WrongParamValueError(f"{name} must be finite numbers, got {v!r}")
    return [float(v) for v in values]


def _series(values, name: str, count: int) -> list[float]:
    values = _numbers(values, name)
    if values and len(values) != count:
        raise errors.WrongParamValueError(f"{name} has {len(values)} values for {count} epochs: give one per epoch "
                                          "or none")
    return values


def _draw(epochs: list[float], training: list[float], validation: list[float], rates: list[float],
          last: float) -> Figure:
    figure = display.new_figure(8.5, 5.6)
    figure.set_facecolor(_BACKGROUND)
    ax = figure.add_axes((0.09, 0.27, 0.78, 0.62))
    ax.set_xlim(0, last)
    ax.set_ylim(0, error_axis_max(max(training + validation, default=0.0)))
    _style(ax, "Epoch", "Error [%]")
    lines = [_curve(ax, epochs, training, _TRAINING, "training error"),
             _curve(ax, epochs, validation, _VALIDATION, "validation error"),
             _learning_rate_axis(ax, epochs, rates)]
    if validation:
        best = best_validation(validation)
        ax.plot(epochs[best], validation[best], "o", ms=14, mfc="none", mec=_FOREGROUND, mew=1.5, zorder=5,
                clip_on=False)
    lines = [line for line in lines if line is not None]
    ax.legend(handles=lines, loc="lower left", bbox_to_anchor=(0, 1.01), ncol=len(lines) or 1, frameon=False,
              labelcolor=_FOREGROUND, fontsize=10)
    figure.text(0.09, 0.03, _summary(epochs, training, validation, rates, last), color=_FOREGROUND,
                family="monospace", fontsize=10, va="bottom")
    return figure


def _curve(ax, x: list[float], y: list[float], color: str, label: str) -> Line2D | None:
    """A line, or a cross for a single point; nothing for no points. Not clipped, so that points on
    the fixed axis limits (the last epoch, the largest error) show whole."""
    if not y:
        return None
    if len(y) == 1:
        return ax.plot(x, y, "x", color=color, ms=10, mew=2, label=label, clip_on=False)[0]
    return ax.plot(x, y, color=color, lw=2, label=label, clip_on=False)[0]


def rate_steps(epochs: list[float], rates: list[float]) -> tuple[list[float], list[float]]:
    """The learning-rate curve for a 'steps-pre' line: a first point one interval before the
    first epoch (not below 0), so each rate spans the epochs it was used for."""
    start = max(0.0, 2 * epochs[0] - epochs[1]) if len(epochs) > 1 else 0.0
    return [start, *epochs], [rates[0], *rates]


def _learning_rate_axis(ax, epochs: list[float], rates: list[float]) -> Line2D | None:
    right = ax.twinx()
    _style(right, None, "Learning rate", _LEARNING_RATE)
    right.patch.set_visible(False)  # the left axis's curves lie beneath
    right.grid(False)
    _rate_scale(right, rates)
    right.yaxis.set_major_formatter(StrMethodFormatter("{x:.1e}"))
    if len(rates) < 2:
        return _curve(right, epochs, rates, _LEARNING_RATE, "learning rate")
    x, y = rate_steps(epochs, rates)
    return right.plot(x, y, drawstyle="steps-pre", color=_LEARNING_RATE, lw=1.8, label="learning rate",
                      clip_on=False)[0]


def _rate_scale(axis, rates: list[float]) -> None:
    """Linear from 0, or log when the rates span more than LOG_RATE_SPAN: linearly, 2e-4 after two
    x0.1 steps from 2e-2 would lie on the 0 line."""
    low, high = min(rates, default=0.0), max(rates, default=0.0)
    if low <= 0 or high / low <= LOG_RATE_SPAN:
        axis.set_ylim(0, 1.1 * high or 1.0)
        return
    axis.set_yscale("log")
    axis.set_ylim(low / 2, high * 2)
    axis.yaxis.set_minor_formatter(NullFormatter())  # labels on the powers of ten only


def _style(ax, xlabel: str | None, ylabel: str, ycolor: str = _FOREGROUND) -> None:
    ax.set_facecolor(_PLOT_AREA)
    if xlabel:
        ax.set_xlabel(xlabel, color=_FOREGROUND)
    ax.set_ylabel(ylabel, color=ycolor)
    ax.tick_params(colors=_FOREGROUND)
    ax.tick_params(axis="y", colors=ycolor)
    for spine in ax.spines.values():
        spine.set_color("#808080")
    ax.grid(True, color="#3a3a3a", lw=0.6)


def _summary(epochs: list[float], training: list[float], validation: list[float], rates: list[float],
             last: float) -> str:
    rows = []
    if validation:
        best = best_validation(validation)
        rows.append(("Best validation error:", f"{validation[best]:.2f} % (epoch {epochs[best]:g})"))
        if training:
            rows.append(("Training error at that epoch:", f"{training[best]:.2f} %"))
    if rates:
        rows.append(("Current learning rate:", f"{rates[-1]:.1e}"))
    rows.append(("Current epoch:", f"{epochs[-1]:g} of {last:g}"))
    return "\n".join(f"{label:<30}{value}" for label, value in rows)
