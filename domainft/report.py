"""The one-screen summary printed at the end of a run (metrics.json itself: rundir.py)."""
from __future__ import annotations

from pathlib import Path

from domainft.tasks import get_task

WIDE_LABELS = 6


def _per_label_table(metrics: dict, labels: list[str]):
    """F1 and support per label as rows (many labels: CUAD's 37 clause categories)."""
    from rich.table import Table

    table = Table(title="F1 per label (best checkpoint)")
    table.add_column("label")
    splits = [split for split in ("validation", "test") if metrics.get(split)]
    for split in splits:
        table.add_column(f"F1 {split}", justify="right")
        table.add_column("n", justify="right")
    for label in labels:
        cells = [(f"{c['f1']:.4f}", str(c["support"])) for c in (metrics[s]["per_class"][label] for s in splits)]
        table.add_row(label, *(x for pair in cells for x in pair))
    return table


def print_summary(metrics: dict, run_dir: Path, console=None) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = console or Console()
    info, train = metrics["run"], metrics["train"]
    console.print(f"\n[bold]domainft run[/bold] {info['name']}: {info['task']} on {info['base']}, "
                  f"tuning {info['method']} ({info['trainable_params']:,} of {info['total_params']:,} "
                  f"parameters trained, lr {train['lr']:g}; model saved in {info['saved_mb']:.1f} MB)")
    d = metrics["data"]
    counts = d["counts"]
    extra = ""
    if "conflicting_rows_removed" in d:
        extra = (f"; {d['duplicates_removed']} duplicate rows and {d['conflicting_rows_removed']} rows "
                 "with conflicting labels removed")
    elif "conflicting_texts_averaged" in d:  # regression
        extra = (f"; {d['duplicates_removed']} duplicate rows removed, {d['conflicting_rows_averaged']} rows of "
                 f"{d['conflicting_texts_averaged']} texts with differing targets averaged")
    elif "duplicates_removed" in d:
        extra = f"; {d['duplicates_removed']} duplicate pairs removed"
    console.print(f"data: train {counts['train']}, validation {counts['validation']}, test {counts['test']}"
                  f"{extra}")
    stop = "early-stopped" if train["stopped_early"] else "ran all epochs"
    console.print(f"training: {train['wall_time_s']:.0f} s, {train['epochs_run']:.2f} epochs ({stop}), "
                  f"best {train['best_metric_name']} {train['best_metric']:.4f} at step {train['best_step']}, "
                  f"{train['examples_per_s']:.1f} examples/s, peak memory {train['peak_rss_mb']:.0f} MB")

    columns = get_task(info["task"]).summary_columns
    table = Table(title="Evaluation (best checkpoint)")
    table.add_column("split")
    table.add_column("n", justify="right")
    for title, _ in columns:
        table.add_column(title, justify="right")
    labels = list(metrics["validation"].get("per_class", {}))
    many = len(labels) > WIDE_LABELS  # one column per label stops fitting: a table per label instead
    if many:
        labels, all_labels = [], labels
    for label in labels:
        table.add_column(f"F1 {label}", justify="right")
    for split in ("validation", "test"):
        m = metrics.get(split)
        if not m:
            continue
        table.add_row(split, str(m["n"]), *(f"{m[key]:.4f}" if key in m else "-" for _, key in columns),
                      *(f"{m['per_class'][label]['f1']:.4f}" for label in labels))
    console.print(table)
    if many:
        console.print(_per_label_table(metrics, all_labels))
    for split in ("validation", "test"):
        m = metrics.get(split) or {}
        if "under_triage" in m:
            console.print(_severity_line(split, m))
    for sample in metrics.get("samples", []):  # task: generation
        console.print("\n".join(f"[bold]{key}[/bold] {escape(sample[key])}"
                                for key in ("prompt", "reference", "generated")), highlight=False)
    before = next((e for e in train.get("history", []) if e.get("step") == 0 and "eval_loss" in e), None)
    if before is not None:  # task: generation evaluates the untrained model first
        console.print(f"validation loss before training {before['eval_loss']:.4f}, after "
                      f"{metrics['validation']['loss']:.4f}")
    console.print(f"run directory: {run_dir}  (model/ with its model card README.md, metrics.json, recipe.yaml)")
    report = metrics.get("report")
    if report and report.get("files"):
        console.print(f"plots: {Path(run_dir) / report['dir']}/  ({', '.join(report['files'])})", highlight=False)


def _severity_line(split: str, m: dict) -> str:
    """Ordinal labels: the model's under/over rates, beside the reference rater's when there is one."""
    line = (f"{split}: under {m['under_triage']:.1%}, over {m['over_triage']:.1%} "
            f"(predicted less / more severe than gold)")
    ref = m.get("reference")
    if ref and "under_triage" in ref:
        line += (f"; reference {ref['column']}: accuracy {ref['accuracy']:.1%}, under "
                 f"{ref['under_triage']:.1%}, over {ref['over_triage']:.1%} (n {ref['n']})")
    return line
