"""What a run writes for people, read back: model cards (their Hugging Face front matter and the
code in them, executed) and the report/ plots."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

CODE = re.compile(r"```python\n(.*?)```", re.S)


def card(path: Path):
    """huggingface_hub's reading of a README.md: (its front matter as a dict, the ModelCard)."""
    from huggingface_hub import ModelCard

    parsed = ModelCard(Path(path).read_text(encoding="utf-8"))
    data = parsed.data.to_dict()
    assert data["tags"][0] == "domainft" and parsed.data.eval_results, data
    return data, parsed


def index_scores(data: dict) -> dict[str, float]:
    """model-index metric name -> value."""
    return {m["name"]: m["value"] for r in data["model-index"][0]["results"] for m in r["metrics"]}


def snippets(path: Path) -> list[str]:
    return CODE.findall(Path(path).read_text(encoding="utf-8"))


def run_snippet(code: str, cwd: Path) -> dict:
    """Execute a card's snippet from the directory the card is in; its variables."""
    here = os.getcwd()
    os.chdir(cwd)
    try:
        namespace: dict = {}
        exec(compile(code, str(Path(cwd) / "README.md"), "exec"), namespace)
        return namespace
    finally:
        os.chdir(here)


def report_files(run_dir: Path) -> list[str]:
    """The plots metrics.json lists under `report`, each checked to be a real PNG of some size."""
    from PIL import Image

    metrics = json.loads((Path(run_dir) / "metrics.json").read_text())
    report = metrics["report"]
    assert report["dir"] == "report"
    for name in report["files"]:
        with Image.open(Path(run_dir) / "report" / name) as image:
            assert image.format == "PNG" and image.size[0] > 400 and image.size[1] > 200, name
    assert sorted(p.name for p in (Path(run_dir) / "report").iterdir()) == sorted(report["files"])
    return report["files"]
