"""Does a run killed with SIGKILL at any moment resume to the result it would have had?

The finance recipe on its sample (with `export.enabled`) runs once uninterrupted, then once per
kill point, each killed with SIGKILL (no cleanup of any kind runs) when the run directory shows
that moment, then checked and resumed:

- after the first complete checkpoint (mid-training)
- during a checkpoint write (the checkpoint's weights on disk, its trainer_state.json not yet)
- during the final save (the staged model directory exists, model/ not yet)
- during the export (the staged bundle directory exists, onnx/ not yet)

After each kill: `domainft predict` on the run must refuse with a message (or, once the model is
saved, predict), and no complete-looking file may be half-written. Then `domainft run --resume`
must finish, with the same test metrics as the uninterrupted run, a complete bundle, and no
temporary files left. Prints a table; `--readme` writes it into bench/README.md.

    .venv/bin/python bench/crash_safety.py [--readme]
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from runner import METRICS_FILE, OUT, RESULTS, ROOT, table_command

RECIPE = ROOT / "recipes" / "finance_sentiment.yaml"
WORK = OUT / "crash_safety"
RESULTS_FILE = RESULTS / "crash_safety.json"
POLL_S = 0.002


def checkpoint_without_state(run: Path) -> bool:
    """A checkpoint being written (weights there, trainer_state.json not yet) after a complete one."""
    found = list((run / "checkpoints").glob("checkpoint-*"))
    return first_complete_checkpoint(run) and any(
        (c / "model.safetensors").exists() and not (c / "trainer_state.json").exists() for c in found)


def first_complete_checkpoint(run: Path) -> bool:
    return any((c / "trainer_state.json").exists() for c in (run / "checkpoints").glob("checkpoint-*"))


# name -> (what the kill interrupts, the condition on the run directory that triggers it)
POINTS = {
    "mid-training": ("after the first complete checkpoint", first_complete_checkpoint),
    "first checkpoint write": ("the first checkpoint half-written", lambda run: not first_complete_checkpoint(run)
                               and any((run / "checkpoints").glob("checkpoint-*/model.safetensors"))),
    "checkpoint write": ("a later checkpoint half-written", checkpoint_without_state),
    "final save": ("the model directory being staged", lambda run: (run / ".model.tmp").exists()),
    "export": ("the bundle being staged", lambda run: (run / ".onnx.tmp").exists()),
}


def command(run: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "domainft", "run", str(RECIPE), "--quiet", "--set", f"output.dir={run}",
            "--set", "export.enabled=true", *extra]


def killed_at(run: Path, condition) -> tuple[bool, float]:
    """Start the run, SIGKILL it the moment `condition(run)` holds; (killed, seconds in)."""
    started = time.perf_counter()
    proc = subprocess.Popen(command(run), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while proc.poll() is None:
        if run.exists() and condition(run):
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return True, time.perf_counter() - started
        time.sleep(POLL_S)
    return False, time.perf_counter() - started


def half_written(run: Path) -> list[str]:
    """Files that look complete but are not: unreadable JSON under a final name, a model/ or
    bundle without its manifest."""
    bad = []
    for name in (METRICS_FILE, "recipe.yaml"):
        path = run / name
        if path.exists() and name.endswith(".json"):
            try:
                json.loads(path.read_text())
            except ValueError:
                bad.append(name)
    for d, manifest in (("model", "domainft.json"), ("onnx", "domainft.json")):
        if (run / d).exists() and not (run / d / manifest).is_file():
            bad.append(d)
    return bad


def predict_after_kill(run: Path) -> str:
    """What `domainft predict` says on the killed run: 'predicts', or its one-line refusal."""
    proc = subprocess.run([sys.executable, "-m", "domainft", "predict", str(run), "Sales rose ."], cwd=ROOT,
                          capture_output=True, text=True)
    if proc.returncode == 0:
        return "predicts"
    if "Traceback" in proc.stderr or proc.returncode != 2:
        return f"FAILED (exit {proc.returncode}, traceback)"
    return "refused: " + " ".join(proc.stderr.split())[:90]


def resume(run: Path) -> int:
    return subprocess.run(command(run, "--resume"), cwd=ROOT, stdout=subprocess.DEVNULL).returncode


def leftovers(run: Path) -> list[str]:
    return sorted(str(p.relative_to(run.parent)) for p in run.parent.rglob(".*") if p.name.endswith(".tmp"))


def measure() -> dict:
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    reference = WORK / "uninterrupted"
    subprocess.run(command(reference), cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    expected = json.loads((reference / METRICS_FILE).read_text())["test"]
    rows = []
    for name, (what, condition) in POINTS.items():
        run = WORK / name.replace(" ", "_")
        killed, at = killed_at(run, condition)
        row = {"point": name, "interrupts": what, "killed": killed, "at_s": round(at, 2),
               "half_written": half_written(run), "predict_after_kill": predict_after_kill(run)}
        row["resume_exit"] = resume(run)
        metrics = json.loads((run / METRICS_FILE).read_text()) if (run / METRICS_FILE).is_file() else {}
        row["test_equal"] = metrics.get("test") == expected
        row["bundle"] = (run / "onnx" / "domainft.json").is_file() and "export" in metrics
        row["leftovers"] = leftovers(run)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return {"recipe": "finance_sentiment (sample data, export enabled)", "rows": rows,
            "expected_test_macro_f1": expected["macro_f1"], "machine": os.uname().machine,
            "date": time.strftime("%Y-%m-%d")}


def _said(message: str) -> str:
    """'predicts', or the refusal's first words, without the run's path (the same in every row)."""
    if not message.startswith("refused: "):
        return message
    words = re.sub(r"\S*/crash_safety/[\w-]+", "RUN", message).removeprefix("refused: error: ").split()
    return f"refused, exit 2: \"{' '.join(words[:7])} ...\""


def table(results: dict) -> str:
    lines = ["| kill point | killed at (s) | half-written files | `predict` after the kill | `--resume` | "
             "test metrics = uninterrupted | bundle complete | temp files left |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results["rows"]:
        lines.append(f"| {r['point']} ({r['interrupts']}) | {r['at_s'] if r['killed'] else 'not reached'} | "
                     f"{', '.join(r['half_written']) or 'none'} | {_said(r['predict_after_kill'])} | "
                     f"{'exit 0' if r['resume_exit'] == 0 else 'exit ' + str(r['resume_exit'])} | "
                     f"{'yes' if r['test_equal'] else 'NO'} | {'yes' if r['bundle'] else 'NO'} | "
                     f"{', '.join(r['leftovers']) or 'none'} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    table_command("crash_safety.py", __doc__.splitlines()[0], RESULTS_FILE, measure, table, argv)


if __name__ == "__main__":
    main()
