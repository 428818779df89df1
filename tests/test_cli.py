"""The command line: exit codes and messages a user sees."""
import json

from typer.testing import CliRunner

from domainft.cli import app

from conftest import ROOT, SAMPLE

runner = CliRunner()


def test_bad_recipe_exits_2_with_field_path(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"data: {{path: {SAMPLE}}}\ntrain: {{early_stopping: {{metric: f1}}}}\n")
    result = runner.invoke(app, ["run", str(recipe)])
    assert result.exit_code == 2
    assert "train.early_stopping.metric: 'f1' is not a metric this task reports" in result.output
    assert "Traceback" not in result.output


def test_set_override_is_validated(tmp_path):
    result = runner.invoke(app, ["validate", str(ROOT / "recipes" / "finance_sentiment.yaml"),
                                 "--set", "tuning.method=lora", "--set", "tuning.rank=8"])
    assert result.exit_code == 2 and "tuning.rank: unknown field" in result.output


def test_validate_shipped_recipe():
    result = runner.invoke(app, ["validate", str(ROOT / "recipes" / "finance_sentiment.yaml"),
                                 "--set", "tuning.method=lora"])
    assert result.exit_code == 0, result.output
    assert "method: lora" in result.output and "labels negative, neutral, positive" in result.output


def test_run_then_predict(tiny_base, tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", str(ROOT / "recipes" / "finance_sentiment.yaml"), "--quiet",
                                 "--set", f"base={tiny_base}", "--set", "train.epochs=1",
                                 "--set", f"output.dir={out}"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["predict", str(out), "Profit rose sharply .", "Shares fell ."])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.strip().splitlines()]
    assert [r["text"] for r in rows] == ["Profit rose sharply .", "Shares fell ."]
    assert all(r["label"] in ("negative", "neutral", "positive") for r in rows)


def test_predict_on_a_non_run_dir(tmp_path):
    result = runner.invoke(app, ["predict", str(tmp_path), "x"])
    assert result.exit_code == 2 and "not a domainft run or model directory" in result.output


def test_models_lists_the_default():
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0 and "minilm" in result.output


def test_ctrl_c_during_a_run_says_what_is_kept_and_how_to_continue(tmp_path, monkeypatch):
    import domainft.pipeline

    out = tmp_path / "run"
    recipe = str(ROOT / "recipes" / "finance_sentiment.yaml")
    args = ["run", recipe, "--set", f"output.dir={out}", "--set", f"data.path={SAMPLE}"]

    def interrupted(r, **kw):  # training stopped by Ctrl-C, after `saved` checkpoints
        if saved:
            step = out / "checkpoints" / "checkpoint-16"
            step.mkdir(parents=True)
            (step / "trainer_state.json").write_text(json.dumps({"global_step": 16}))
        raise KeyboardInterrupt

    monkeypatch.setattr(domainft.pipeline, "run", interrupted)
    saved = False
    result = runner.invoke(app, args)
    assert result.exit_code == 130
    assert f"interrupted: {out}: no checkpoint had been saved yet; start it again with: domainft run" in result.output
    saved = True
    result = runner.invoke(app, args)
    assert result.exit_code == 130 and "Traceback" not in result.output
    assert (f"its last complete checkpoint is kept ({out / 'checkpoints' / 'checkpoint-16'}); continue with: "
            f"domainft run {recipe} --set output.dir={out} --set data.path={SAMPLE} --resume") in result.output
