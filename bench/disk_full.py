"""Does a run or an export that fills the disk say so, and does the work go on once there is room?

The finance recipe on its sample data with `export.enabled`, once on the ordinary disk (the
reference), then into a small tmpfs that fills during the first checkpoint write; the message and
exit status of that run are recorded, the tmpfs is made larger (`mount -o remount,size=...`: the
user freeing space) and `domainft run --resume` finishes it. Then `domainft export` of the
reference run into a tmpfs too small for the bundle, and again once it is larger. Needs root (it
mounts tmpfs file systems, and unmounts them); elsewhere it says so and measures nothing.

    sudo .venv/bin/python bench/disk_full.py [--readme]
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from runner import METRICS_FILE, OUT, RESULTS, ROOT, table_command

RECIPE = ROOT / "recipes" / "finance_sentiment.yaml"
SAMPLE = ROOT / "data" / "finance_sentiment_sample.txt"
WORK = OUT / "disk_full"
RESULTS_FILE = RESULTS / "disk_full.json"
ROOMY = "4G"


@contextmanager
def tmpfs(size: str):
    """A fresh tmpfs of `size`, unmounted (and its mount point removed) afterwards."""
    where = Path(tempfile.mkdtemp(prefix="domainft-disk-full-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True,
                   capture_output=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=False)
        where.rmdir()


def grow(where: Path) -> None:
    subprocess.run(["mount", "-o", f"remount,size={ROOMY}", str(where)], check=True)


def domainft(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "domainft", *args], cwd=ROOT, capture_output=True, text=True)


def run_args(run: Path, *extra: str) -> list[str]:
    return ["run", str(RECIPE), "--quiet", "--set", f"data.path={SAMPLE}", "--set", f"output.dir={run}",
            "--set", "export.enabled=true", *extra]


def failure(proc: subprocess.CompletedProcess, where: Path) -> dict:
    said = " ".join(proc.stderr.split())
    return {"exit": proc.returncode, "traceback": "Traceback" in proc.stderr or "│" in proc.stderr,
            "said": said.replace(str(where), "DISK"),
            "free_mib": round(shutil.disk_usage(where).free / 2**20, 1)}


def leftovers(where: Path) -> list[str]:
    return sorted(str(p.relative_to(where)) for p in where.rglob(".*") if p.name.endswith(".tmp"))


def during_training(expected: dict) -> dict:
    with tmpfs("150M") as where:  # a MiniLM checkpoint (weights and optimizer) needs about 270 MB
        run = where / "run"
        row = {"point": "training (the first checkpoint write)", "disk": "150M tmpfs",
               **failure(domainft(*run_args(run)), where)}
        grow(where)
        resumed = domainft(*run_args(run, "--resume"))
        metrics = json.loads((run / METRICS_FILE).read_text()) if (run / METRICS_FILE).is_file() else {}
        row.update(after="--resume", after_exit=resumed.returncode, test_equal=metrics.get("test") == expected,
                   bundle=(run / "onnx" / "domainft.json").is_file(), leftovers=leftovers(where))
    return row


def during_export(reference: Path) -> dict:
    with tmpfs("40M") as where:  # the fp32 graph alone is about 90 MB
        bundle = where / "bundle"
        row = {"point": "export (the bundle)", "disk": "40M tmpfs",
               **failure(domainft("export", str(reference), "--out", str(bundle)), where)}
        row["left_after_failure"] = sorted(p.name for p in where.iterdir())
        grow(where)
        again = domainft("export", str(reference), "--out", str(bundle))
        row.update(after="export again", after_exit=again.returncode, test_equal=None,
                   bundle=(bundle / "domainft.json").is_file(), leftovers=leftovers(where))
    return row


def measure() -> dict:
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    reference = WORK / "reference"
    subprocess.run([sys.executable, "-m", "domainft", *run_args(reference)], cwd=ROOT, check=True)
    expected = json.loads((reference / METRICS_FILE).read_text())["test"]
    rows = [during_training(expected), during_export(reference)]
    for row in rows:
        print(json.dumps(row), flush=True)
    return {"recipe": "finance_sentiment (sample data, export enabled)", "rows": rows,
            "machine": os.uname().machine, "date": time.strftime("%Y-%m-%d")}


def table(results: dict) -> str:
    lines = ["| disk fills during | disk | exit | traceback | what it said | then | exit | test metrics = "
             "uninterrupted | bundle complete | temp files left |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results["rows"]:
        equal = "–" if r["test_equal"] is None else ("yes" if r["test_equal"] else "NO")
        lines.append(f"| {r['point']} | {r['disk']} | {r['exit']} | {'YES' if r['traceback'] else 'no'} | "
                     f"{_shown(r['said'])} | {r['after']} | {r['after_exit']} | {equal} | "
                     f"{'yes' if r['bundle'] else 'NO'} | {', '.join(r['leftovers']) or 'none'} |")
    return "\n".join(lines)


def _shown(said: str) -> str:
    """The message's start (what failed) and end (what to do), without the library's words between."""
    return said if len(said) <= 150 else f"{said[:70]} ... {said[-75:]}"


def main(argv=None) -> None:
    root = os.geteuid() == 0 and shutil.which("mount")
    table_command("disk_full.py", __doc__.splitlines()[0], RESULTS_FILE, measure, table, argv,
                  cannot=None if root else "it mounts tmpfs file systems: run it as root")


if __name__ == "__main__":
    main()
