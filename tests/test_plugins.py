"""Plug-ins from a user's file: the README's custom method and custom task, loaded with --code,
work from the command line (run, validate, export, predict); a broken file gets a message."""
import json
import re

import pytest
from typer.testing import CliRunner

from domainft.cli import app
from domainft.methods import METHODS
from domainft.tasks import TASKS

from conftest import ROOT, SAMPLE

runner = CliRunner()


def readme_plugins() -> str:
    """The README's plug-in examples (its python blocks under 'Plug-ins'), as one module."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### Plug-ins", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 2, "the README shows a custom method and a custom task"
    return "\n".join(blocks)


@pytest.fixture
def plugins(tmp_path):
    path = tmp_path / "my_plugins.py"
    path.write_text(readme_plugins(), encoding="utf-8")
    yield path
    METHODS.remove("head_only")
    TASKS.remove("weighted_classification")


def write_recipe(path, tiny_base, out, **extra):
    lines = [f"base: {tiny_base}", "data:", "  format: phrasebank", f"  path: {SAMPLE}", "  max_length: 64",
             "train: {epochs: 1, batch_size: 16, seed: 7}", f"output: {{dir: {out}}}"]
    lines += [f"{k}: {v}" for k, v in extra.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def test_readme_method_runs_exports_and_predicts_from_the_cli(plugins, tiny_base, tmp_path):
    recipe = write_recipe(tmp_path / "r.yaml", tiny_base, tmp_path / "run")
    invoke("run", recipe, "--code", plugins, "--set", "tuning.method=head_only", "--quiet")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    info = metrics["run"]
    assert info["method"] == "head_only" and metrics["train"]["lr"] == 1e-3  # the method's default_lr
    assert info["trainable_params"] < info["total_params"] / 10  # the head only
    invoke("export", tmp_path / "run", "--code", plugins, "--no-int8")
    bundle = json.loads((tmp_path / "run" / "onnx" / "domainft.json").read_text())
    assert bundle["tuning"]["method"] == "head_only" and bundle["parity"]["max_abs_diff"] <= 1e-4
    from_run = [json.loads(line) for line in invoke("predict", tmp_path / "run", "--code", plugins, "Sales rose .")
                .splitlines()]
    from_bundle = [json.loads(line) for line in invoke("predict", tmp_path / "run" / "onnx", "Sales rose .")
                   .splitlines()]
    assert from_run[0]["label"] == from_bundle[0]["label"]


def test_readme_task_validates_and_runs_from_the_cli(plugins, tiny_base, tmp_path):
    recipe = write_recipe(tmp_path / "r.yaml", tiny_base, tmp_path / "run", task="weighted_classification")
    assert "ok: base" in invoke("validate", recipe, "--code", plugins)
    invoke("run", recipe, "--code", plugins, "--quiet")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["run"]["task"] == "weighted_classification"
    assert metrics["train"]["best_metric_name"] == "weighted_f1"


def test_without_code_the_plugin_names_are_unknown(tiny_base, tmp_path):
    recipe = write_recipe(tmp_path / "r.yaml", tiny_base, tmp_path / "run", task="weighted_classification")
    result = runner.invoke(app, ["validate", str(recipe)])
    assert result.exit_code == 2 and "task: 'weighted_classification' is not a task" in result.output


@pytest.mark.parametrize("source, message", [
    ("raise RuntimeError('boom')\n", r"--code: importing .*broken.py failed at .*broken.py:1: RuntimeError: boom"),
    ("from domainft.methods import register_method\nfrom domainft.methods.full import FullTuning\n"
     "register_method('full')(type('Again', (FullTuning,), {}))\n",
     r"tuning method 'full' is already registered .*replace=True"),
])
def test_a_broken_plugin_file_gets_one_message_and_exit_2(tiny_base, tmp_path, source, message):
    broken = tmp_path / "broken.py"
    broken.write_text(source, encoding="utf-8")
    recipe = write_recipe(tmp_path / "r.yaml", tiny_base, tmp_path / "run")
    result = runner.invoke(app, ["run", str(recipe), "--code", str(broken)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert re.search(message, " ".join(result.output.split()))
    assert not (tmp_path / "run").exists()


def test_code_must_be_a_python_file(tmp_path):
    result = runner.invoke(app, ["validate", str(tmp_path / "r.yaml"), "--code", str(tmp_path / "missing.py")])
    assert result.exit_code == 2 and "--code:" in result.output and "is not a Python file" in result.output
