"""The run report: PNG plots drawn from metrics.json's content (RUN_DIR/report/).

write_report(metrics, report_dir) draws what the metrics carry and skips what they do not:

    learning_curves.png   training loss per logging step and validation loss per evaluation against
                          the step (epochs on the top axis); the early-stopping metric below; the
                          best step marked
    confusion_matrix.png  classification: test (else validation); rows true, columns predicted
    per_class_f1.png      classification, multilabel: F1 per label, its support in the label
    per_entity.png        ner: precision, recall and F1 per entity type
    per_target.png        regression: correlation and error per target
    triage.png            ordinal labels: under- and over-triage per escalation threshold on
                          validation, the run's threshold marked

matplotlib is imported here only, and draws on its Agg canvas: no display, no pyplot state.
"""
from __future__ import annotations

from pathlib import Path

DPI = 120
WIDE_LABELS = 6  # more labels than this: bars sorted by score, the best on top
LABEL_CHARS = 32  # longer label names are shortened on the axes


def write_report(metrics: dict, report_dir: Path) -> list[Path]:
    """Draw the run's plots into `report_dir`; the files written, in PLOTS order."""
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, draw in PLOTS:
        fig = draw(metrics)
        if fig is None:
            continue
        path = report_dir / name
        fig.savefig(path, dpi=DPI)
        written.append(path)
    return written


# --- learning curves ------------------------------------------------------------------------------

STOP_FALLBACK = ("macro_f1", "micro_f1", "f1", "pearson", "token_f1", "accuracy")


def learning_curves(metrics: dict):
    train = metrics.get("train") or {}
    history = train.get("history") or train.get("log") or []  # `log`: runs before the full history
    steps = [e for e in history if "loss" in e and "step" in e]
    evals = [e for e in history if "eval_loss" in e and "step" in e]
    if not steps and not evals:
        return None
    stop = train.get("best_metric_name") or "loss"
    second = stop if stop != "loss" and any(f"eval_{stop}" in e for e in evals) else None
    if second is None:  # stopped on the loss: the task's main score below, for reference
        second = next((k for k in STOP_FALLBACK if any(f"eval_{k}" in e for e in evals)), None)
    fig = _figure(9, 6.8 if second else 4.2)
    axes = fig.subplots(2 if second else 1, 1, sharex=True, squeeze=False)[:, 0]
    ax = axes[0]
    if steps:
        ax.plot([e["step"] for e in steps], [e["loss"] for e in steps], color="C0", lw=1.4,
                marker="." if len(steps) <= 80 else None, label="training loss (mean since the last log)")
    if evals:
        ax.plot([e["step"] for e in evals], [e["eval_loss"] for e in evals], color="C1", lw=1.4, marker="o",
                ms=4, label="validation loss")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=9)
    if second:
        sub = axes[1]
        points = [e for e in evals if f"eval_{second}" in e]
        better = "lower" if second in ("mse", "mae", "perplexity") else "higher"
        sub.plot([e["step"] for e in points], [e[f"eval_{second}"] for e in points], color="C3", lw=1.4,
                 marker="o", ms=4, label=f"validation {second}")
        role = "early-stopping metric" if second == stop else f"not the stopping metric ({stop})"
        sub.set_ylabel(f"{second} ({better} is better)")
        sub.set_title(f"validation {second}: {role}", fontsize=10, loc="left")
        sub.grid(alpha=0.3)
    best = train.get("best_step")
    if best is not None:
        for a in axes:
            a.axvline(best, color="C2", ls="--", lw=1.2)
        last = max([e["step"] for e in history if "step" in e] or [best]) or 1
        right = best > 0.65 * last
        value = train.get("best_metric")
        text = f"best checkpoint: step {best}"
        epoch = _epoch_at(history, best)
        if epoch is not None:
            text += f", epoch {epoch:g}"
        if value is not None:
            text += f"\n{train.get('best_metric_name')} {value:.4f} (restored)"
        target = axes[1] if second == stop and second else axes[0]
        target.annotate(text, xy=(best, 0.5), xycoords=("data", "axes fraction"), xytext=(-6 if right else 6, 0),
                        textcoords="offset points", ha="right" if right else "left", va="center", fontsize=9,
                        color="C2", bbox={"boxstyle": "round", "fc": "white", "ec": "C2", "alpha": 0.9})
    from matplotlib.ticker import MaxNLocator

    axes[-1].set_xlabel("training step")
    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    per_epoch = _steps_per_epoch(history)
    if per_epoch:
        top = axes[0].secondary_xaxis("top", functions=(lambda s: s / per_epoch, lambda e: e * per_epoch))
        top.set_xlabel("epoch")
    run = metrics.get("run") or {}
    fig.suptitle(f"{run.get('name', 'run')}: learning curves ({run.get('task', '')}, {run.get('method', '')})",
                 fontsize=12)
    return fig


def _steps_per_epoch(history: list[dict]) -> float | None:
    points = [(e["step"], e["epoch"]) for e in history if e.get("epoch") and e.get("step")]
    if not points:
        return None
    step, epoch = max(points)
    return step / epoch


def _epoch_at(history: list[dict], step: int) -> float | None:
    epoch = next((e.get("epoch") for e in history if e.get("step") == step and "eval_loss" in e), None)
    return round(float(epoch), 2) if epoch is not None else None


# --- per-label plots --------------------------------------------------------------------------------

def confusion_matrix(metrics: dict):
    split, m = _split_with(metrics, "confusion_matrix")
    if m is None:
        return None
    import numpy as np

    labels, matrix = m["confusion_matrix"]["labels"], np.asarray(m["confusion_matrix"]["matrix"])
    k = len(labels)
    share = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
    side = min(max(4.8, 0.36 * k + 2.6), 18)
    fig = _figure(side + 1.6, side)
    ax = fig.subplots()
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    names = [_short(label) for label in labels]
    vertical = k > 6 or max(map(len, names)) > 10
    ax.set_xticks(range(k), labels=names, rotation=90 if vertical else 0, fontsize=9 if k <= 20 else 7)
    ax.set_yticks(range(k), labels=names, fontsize=9 if k <= 20 else 7)
    if k <= 20:
        for i in range(k):
            for j in range(k):
                if matrix[i, j]:
                    ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=9 if k <= 10 else 7,
                            color="white" if share[i, j] > 0.55 else "black")
    ordinal = "under_triage" in m
    ax.set_xlabel("predicted label" + (" (most severe first)" if ordinal else ""))
    ax.set_ylabel("true label" + (" (most severe first)" if ordinal else ""))
    ax.set_title(f"{_name(metrics)}: confusion matrix on {split} (n={m.get('n', int(matrix.sum()))})"
                 + ("\nabove the diagonal: predicted less severe than gold (under-triage)" if ordinal else ""),
                 fontsize=11)
    fig.colorbar(image, ax=ax, shrink=0.75,
                 label="share of the true label's examples" + (" (cells: counts)" if k <= 20 else ""))
    return fig


def per_class_f1(metrics: dict):
    if (metrics.get("run") or {}).get("task") == "ner":
        return None  # per_entity
    split, m = _split_with(metrics, "per_class")
    if m is None:
        return None
    items = list(m["per_class"].items())
    if len(items) > WIDE_LABELS:
        items.sort(key=lambda item: -item[1]["f1"])
    thresholds = (m.get("thresholds") or {})
    per_label = thresholds.get("rule") == "per_label"
    names = []
    for label, c in items:
        extra = f", t {thresholds['values'][label]:g}" if per_label and label in thresholds.get("values", {}) else ""
        names.append(f"{_short(label)} (n={c['support']}{extra})")
    k = len(items)
    fig = _figure(8.5, max(2.6, 0.3 * k + 1.6))
    ax = fig.subplots()
    f1 = [c["f1"] for _, c in items]
    ax.barh(range(k), f1, color="C0", height=0.7)
    ax.set_ylim(k - 0.5, -0.5)  # the first label on top, no blank margins
    for i, v in enumerate(f1):
        ax.text(v + 0.01, i, f"{v:.2f}", va="center", fontsize=8)
    ax.set_yticks(range(k), labels=names, fontsize=9 if k <= 20 else 8)
    ax.set_xlim(0, 1.1)
    ax.set_xlabel("F1")
    macro = m.get("macro_f1")
    if macro is not None:
        ax.axvline(macro, color="C1", ls="--", lw=1.2)
    ax.grid(axis="x", alpha=0.3)
    support = "examples with the label" if "micro_f1" in m and "accuracy" not in m else "gold examples"
    ax.set_title(f"{_name(metrics)}: F1 per label on {split} (n = {support}"
                 + (", t = its threshold" if per_label else "") + ")"
                 + (f"\ndashed line: macro-F1 {macro:.3f}" if macro is not None else ""), fontsize=11)
    return fig


def per_entity(metrics: dict):
    if (metrics.get("run") or {}).get("task") != "ner":
        return None
    split, m = _split_with(metrics, "per_class")
    if m is None:
        return None
    items = sorted(m["per_class"].items(), key=lambda item: -item[1]["support"])
    k = len(items)
    fig = _figure(8.5, max(2.8, 0.75 * k + 1.6))
    ax = fig.subplots()
    height = 0.26
    for offset, (key, color) in enumerate((("precision", "C0"), ("recall", "C1"), ("f1", "C2"))):
        values = [c[key] for _, c in items]
        positions = [i + (offset - 1) * height for i in range(k)]
        ax.barh(positions, values, height=height, color=color, label="F1" if key == "f1" else key)
        for y, v in zip(positions, values):
            ax.text(v + 0.01, y, f"{v:.2f}", va="center", fontsize=8)
    ax.set_yticks(range(k), labels=[f"{_short(t)} (n={c['support']} entities)" for t, c in items])
    ax.invert_yaxis()
    ax.set_xlim(0, 1.1)
    ax.set_xlabel("score (entity level, strict IOB2)")
    fig.legend(loc="outside lower center", fontsize=9, ncols=3)
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(f"{_name(metrics)}: entity scores per type on {split} (overall F1 {m.get('f1', 0):.3f})",
                 fontsize=11)
    return fig


def per_target(metrics: dict):
    split, m = _split_with(metrics, "per_target")
    if m is None:
        return None
    import math

    items = list(m["per_target"].items())
    k = len(items)
    fig = _figure(11, max(2.8, 0.9 * k + 1.8))
    left, right = fig.subplots(1, 2, sharey=True, width_ratios=[3, 2])
    height = 0.26
    for offset, (key, label, color) in enumerate((("pearson", "Pearson r", "C0"), ("spearman", "Spearman rho", "C1"),
                                                   ("r2", "R squared", "C2"))):
        values = [c.get(key, 0.0) for _, c in items]
        positions = [i + (offset - 1) * height for i in range(k)]
        left.barh(positions, values, height=height, color=color, label=label)
        for y, v in zip(positions, values):
            left.text(max(v, 0) + 0.01, y, f"{v:.2f}", va="center", fontsize=8)
    low = min([0.0] + [c.get("r2", 0.0) for _, c in items])
    left.set_xlim(max(low - 0.05, -1.05), 1.12)
    left.axvline(0, color="black", lw=0.8)
    left.set_xlabel("correlation / R squared (1 = perfect)")
    left.set_yticks(range(k), labels=[_short(name) for name, _ in items])
    left.invert_yaxis()
    mae = [c["mae"] for _, c in items]
    rmse = [math.sqrt(c["mse"]) for _, c in items]
    right.barh([i - height / 2 for i in range(k)], mae, height=height, color="C4", label="MAE")
    right.barh([i + height / 2 for i in range(k)], rmse, height=height, color="C5", label="RMSE")
    top = max(rmse + mae + [1e-9])
    for i, (a, b) in enumerate(zip(mae, rmse)):
        right.text(a + 0.01 * top, i - height / 2, f"{a:.3g}", va="center", fontsize=8)
        right.text(b + 0.01 * top, i + height / 2, f"{b:.3g}", va="center", fontsize=8)
    right.set_xlim(0, top * 1.25)
    right.set_xlabel("error, in the data's units")
    fig.legend(loc="outside lower center", fontsize=9, ncols=5)
    for a in (left, right):
        a.grid(axis="x", alpha=0.3)
    fig.suptitle(f"{_name(metrics)}: scores per target on {split} (n={m.get('n', '?')})", fontsize=11)
    return fig


# --- ordinal labels ---------------------------------------------------------------------------------

def triage(metrics: dict):
    validation = metrics.get("validation") or {}
    sweep = validation.get("escalation_sweep")
    if not sweep:
        return None
    from matplotlib.ticker import PercentFormatter

    rows = sorted(sweep, key=lambda r: -r["escalate_threshold"])
    x = [r["escalate_threshold"] for r in rows]
    fig = _figure(9, 5.6)
    ax = fig.subplots()
    ax.plot(x, [r["under_triage"] for r in rows], color="C3", marker="o", lw=1.8,
            label="under-triage: predicted less severe than gold")
    ax.plot(x, [r["over_triage"] for r in rows], color="C0", marker="o", lw=1.8,
            label="over-triage: predicted more severe than gold")
    ax.plot(x, [r["accuracy"] for r in rows], color="0.45", ls="--", lw=1.2, label="accuracy")
    chosen = (validation.get("decision") or {}).get("escalate_threshold")
    at = 1.0 if chosen is None else chosen
    ax.axvline(at, color="black", ls="--", lw=1)
    ax.annotate("the run's threshold: " + (f"{chosen:g}" if chosen is not None else "none (most probable label)"),
                xy=(at, 0.98), xycoords=("data", "axes fraction"), xytext=(6, 0), textcoords="offset points",
                ha="left", va="top", fontsize=9)
    test = metrics.get("test") or {}
    if "under_triage" in test:
        ax.scatter([at], [test["under_triage"]], marker="*", s=160, color="C3", zorder=5, edgecolor="black",
                   label=f"test at the run's threshold: under {test['under_triage']:.1%}")
        ax.scatter([at], [test["over_triage"]], marker="*", s=160, color="C0", zorder=5, edgecolor="black",
                   label=f"test at the run's threshold: over {test['over_triage']:.1%}")
    ref = validation.get("reference") or {}
    if "under_triage" in ref:
        ax.axhline(ref["under_triage"], color="C3", ls=":", lw=1.2,
                   label=f"{ref['column']} (reference rater) under-triage, validation")
        ax.axhline(ref["over_triage"], color="C0", ls=":", lw=1.2,
                   label=f"{ref['column']} (reference rater) over-triage, validation")
    ax.invert_xaxis()  # from the most probable label (1.0) towards more escalation
    ax.set_xticks(x, labels=[f"{t:.1f}" if round(t, 1) == t else f"{t:g}" for t in x])
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_ylim(-0.02, 1.02)  # a rate of 0 stays visible
    ax.set_xlabel("escalation threshold (1.0 = the most probable label; lower thresholds escalate more)")
    ax.set_ylabel(f"share of validation examples (n={validation.get('n', '?')})")
    ax.grid(alpha=0.3)
    ax.set_title(f"{_name(metrics)}: under- and over-triage per escalation threshold (validation)", fontsize=11)
    fig.legend(loc="outside lower center", ncols=2, fontsize=8)
    return fig


PLOTS = [("learning_curves.png", learning_curves), ("confusion_matrix.png", confusion_matrix),
         ("per_class_f1.png", per_class_f1), ("per_entity.png", per_entity), ("per_target.png", per_target),
         ("triage.png", triage)]


# --- helpers ------------------------------------------------------------------------------------------

def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _split_with(metrics: dict, key: str) -> tuple[str | None, dict | None]:
    """The test split's report when it carries `key`, else validation's."""
    for split in ("test", "validation"):
        m = metrics.get(split) or {}
        if m.get(key):
            return split, m
    return None, None


def _name(metrics: dict) -> str:
    return (metrics.get("run") or {}).get("name", "run")


def _short(label: str) -> str:
    label = str(label)
    return label if len(label) <= LABEL_CHARS else label[:LABEL_CHARS - 1] + "\u2026"
