"""A serving host's install: `pip install ".[serve]"` into a fresh virtual environment brings no torch,
transformers, peft or datasets, and there the server tests (test_serve.py, test_microbatch.py) and
`domainft predict` pass against bundles that this (full) install trained and exported.

Needs the package index (as scripts/setup.sh does); pip's cache makes reruns quick."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from test_serving_threads import trained_bundle

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "transformers", "peft", "datasets", "accelerate", "optimum", "sklearn", "matplotlib")


def light_venv(where: Path) -> Path:
    """A venv with domainft[serve] installed from a copy of the sources (a build in the checkout would
    leave build/ behind), plus the test runner and Starlette's test client."""
    source = where / "src"
    shutil.copytree(ROOT / "domainft", source / "domainft", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "venv", str(where / "venv")], check=True)
    python = where / "venv" / "bin" / "python"
    pip = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-c",
                          str(ROOT / "constraints.txt"), f"{source}[serve]", "pytest", "httpx"],
                         capture_output=True, text=True, timeout=900)
    assert pip.returncode == 0, f"pip install .[serve] failed:\n{pip.stdout}\n{pip.stderr}"
    return python


def test_the_serve_install_has_no_torch_and_serves_bundles_built_by_the_full_install(tiny_base, tmp_path_factory,
                                                                                     tmp_path):
    bundles = tmp_path / "bundles"
    bundles.mkdir()
    for task in ("classification", "ner"):
        (bundles / task).symlink_to(trained_bundle(tiny_base, tmp_path_factory, task))
    python = light_venv(tmp_path)

    found = subprocess.run([str(python), "-c", "import importlib.util as u, json; "
                            f"print(json.dumps([m for m in {HEAVY!r} if u.find_spec(m)]))"],
                           capture_output=True, text=True, check=True)
    assert json.loads(found.stdout) == [], f"the serve install pulled {found.stdout}"

    env = {**os.environ, "DOMAINFT_TEST_BUNDLES": str(bundles)}
    env.pop("PYTHONPATH", None)  # the installed package, not the checkout
    tests = [str(ROOT / "tests" / "test_serve.py"), str(ROOT / "tests" / "test_microbatch.py")]
    run = subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and "skipped" not in run.stdout

    domainft = python.parent / "domainft"
    predicted = subprocess.run([str(domainft), "predict", str(bundles / "classification"), "Sales rose ."],
                               capture_output=True, text=True, cwd=tmp_path, env=env)
    assert predicted.returncode == 0, predicted.stderr
    assert json.loads(predicted.stdout)["text"] == "Sales rose ."
    refused = subprocess.run([str(domainft), "run", str(ROOT / "recipes" / "finance_sentiment.yaml")],
                             capture_output=True, text=True, cwd=tmp_path, env=env)
    assert refused.returncode == 2 and 'pip install "domainft[train]"' in refused.stderr
    assert not (tmp_path / "runs").exists()
