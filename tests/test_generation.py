"""task: generation on a tiny random Llama: chat-template masking, 4-bit (QLoRA) loading and
training on the CPU, adapter save/reload with identical generations, merging, recipe errors."""
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from domainft import load, run
from domainft.chat import IGNORE, encode_pair, prompt_ids
from domainft.cli import app
from domainft.errors import DataError, DomainftError, RecipeError
from domainft.recipe import Recipe
from domainft.textmatch import exact_match, token_f1

from cards import card, report_files, run_snippet, snippets
from contract import write_pairs

PROMPTS = ["Clause 7: the supplier shall pay the fees. Who bears the duty?",
           "Clause 9: the customer shall keep records. Who bears the duty?"]


def quiet_run(recipe, **kw):
    return run(recipe, progress=False, echo=lambda *a: None, **kw)


def gen_recipe(base, data, out, **overrides):
    raw = {"name": "gen", "task": "generation", "base": str(base),
           "data": {"path": str(data), "max_length": 128},
           "tuning": {"method": "qlora", "r": 4, "alpha": 8},
           "train": {"epochs": 1, "batch_size": 8, "eval_batch_size": 16, "lr": 5e-3, "seed": 7},
           "generation": {"max_new_tokens": 6},
           "output": {"dir": str(out)}}
    return Recipe.from_dict(raw).override(overrides)


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory):
    return write_pairs(tmp_path_factory.mktemp("gen_data") / "pairs.jsonl")


@pytest.fixture(scope="module")
def runs(tiny_decoder, pairs_file, tmp_path_factory):
    """One qlora and one lora run on the tiny decoder, shared by the tests below."""
    out = tmp_path_factory.mktemp("gen_runs")
    return {m: quiet_run(gen_recipe(tiny_decoder, pairs_file, out / m, **{"tuning.method": m}))
            for m in ("qlora", "lora")}


@pytest.fixture(scope="module")
def tokenizer(tiny_decoder):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_decoder)


def test_report_and_model_card_of_a_generation_run(runs):
    result = runs["lora"]
    assert report_files(result.run_dir) == ["learning_curves.png"]
    data, _ = card(result.model_dir / "README.md")
    assert data["pipeline_tag"] == "text-generation" and data["library_name"] == "peft"
    code = snippets(result.model_dir / "README.md")[-1]
    ns = run_snippet(code.replace("Your instruction here.", PROMPTS[0]), result.model_dir)
    assert ns["answer"] == result.model.generate([PROMPTS[0]])[0]
    assert "4-bit" in (runs["qlora"].model_dir / "README.md").read_text()


# --- masking -----------------------------------------------------------------------------------

def test_labels_are_ignored_exactly_on_the_prompt_tokens(tokenizer):
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": PROMPTS[0]}]
    ids, labels, truncated = encode_pair(tokenizer, chat, "the supplier", max_length=128)
    prompt = prompt_ids(tokenizer, chat)
    assert not truncated and ids[:len(prompt)] == prompt
    assert labels[:len(prompt)] == [IGNORE] * len(prompt)
    assert labels[len(prompt):] == ids[len(prompt):] and IGNORE not in labels[len(prompt):]
    # What is learned: the response and the end-of-turn token closing it, nothing the template adds after.
    assert tokenizer.decode(labels[len(prompt):]) == "the supplier<|im_end|>"
    assert ids[-1] == tokenizer.eos_token_id


def test_chat_rows_learn_only_the_last_assistant_turn(tmp_path, tokenizer):
    from domainft.tasks import get_task

    turns = [{"role": "user", "content": "Who pays?"}, {"role": "assistant", "content": "the customer"},
             {"role": "user", "content": "And who insures?"}, {"role": "assistant", "content": "the supplier"}]
    path = tmp_path / "chat.jsonl"
    path.write_text(json.dumps({"conversation": turns}) + "\n" * 2 + json.dumps({"conversation": turns[:2]}) + "\n")
    recipe = Recipe.from_dict({"task": "generation", "data": {"train": str(path), "validation": str(path),
                                                              "messages_column": "conversation",
                                                              "system_prompt": "Answer briefly."}})
    task = get_task("generation")
    pairs = task.load_data(recipe.data).train
    encoded = task.encode(pairs, tokenizer, {}, recipe.data)
    learned = [t for t in encoded["labels"][0] if t != IGNORE]
    assert tokenizer.decode(learned) == "the supplier<|im_end|>"  # not "the customer" of turn 2
    text = tokenizer.decode(encoded["input_ids"][0])
    assert text.startswith("<|im_start|>system\nAnswer briefly.<|im_end|>") and "the customer" in text


def test_padding_is_masked_but_the_end_of_turn_token_is_learned(tokenizer):
    """The pad token is the end-of-turn token (as in SmolLM2): labels must be masked by position."""
    from domainft.tasks import get_task

    collate = get_task("generation").collator(tokenizer)
    rows = []
    for response in ("the supplier", "the licensee under the licence"):
        ids, labels, _ = encode_pair(tokenizer, [{"role": "user", "content": "Who?"}], response, 64)
        rows.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels})
    batch = collate(rows)
    short = len(rows[0]["input_ids"])
    assert batch["labels"][0, short - 1] == tokenizer.eos_token_id  # learned: the model must stop
    assert (batch["labels"][0, short:] == IGNORE).all() and (batch["attention_mask"][0, short:] == 0).all()
    assert (batch["input_ids"][0, short:] == tokenizer.pad_token_id).all()


# --- qlora: 4-bit loading and a training step --------------------------------------------------

def test_qlora_loads_the_base_in_4bit_nf4_and_trains_only_lora(runs, tiny_decoder):
    import bitsandbytes as bnb

    result = runs["qlora"]
    model = result.model.model
    q_proj = model.get_base_model().model.layers[0].self_attn.q_proj
    assert isinstance(q_proj.base_layer, bnb.nn.Linear4bit)
    state = q_proj.base_layer.weight.quant_state
    # Double quantization; on AVX512-BF16 CPUs bitsandbytes unnests it when it repacks for evaluation.
    assert q_proj.base_layer.weight.quant_type == "nf4" and (state.nested or state.original_nested)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    for name in ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"):
        assert any(f"{name}.lora_A" in n for n in trainable), name

    train = result.metrics["train"]
    assert train["gradient_checkpointing"] is True and train["steps"] > 0
    before, *after = [e for e in train["history"] if "eval_loss" in e]
    assert before["step"] == 0 and after  # the untrained model is evaluated first, for reference
    assert np.isfinite(result.metrics["validation"]["loss"])
    assert result.metrics["validation"]["loss"] < before["eval_loss"]  # the steps did something

    saved = {p.name for p in result.model_dir.iterdir()}
    assert "adapter_model.safetensors" in saved and "model.safetensors" not in saved
    manifest = json.loads((result.model_dir / "domainft.json").read_text())
    assert manifest["base"]["path"] == str(tiny_decoder) and manifest["tuning"]["method"] == "qlora"


def test_short_answers_are_scored_by_generation(runs):
    for split in ("validation", "test"):
        m = runs["qlora"].metrics[split]
        assert {"loss", "perplexity", "exact_match", "token_f1"} <= set(m)
        assert m["perplexity"] == pytest.approx(np.exp(m["loss"]), rel=1e-6)


# --- reload and generation ---------------------------------------------------------------------

@pytest.mark.parametrize("method", ["qlora", "lora"])
def test_adapter_reload_generates_the_same_text(runs, method):
    result = runs[method]
    before = result.model.generate(PROMPTS, max_new_tokens=8)
    reloaded = load(result.run_dir)
    assert reloaded.generate(PROMPTS, max_new_tokens=8) == before
    sampled = reloaded.generate(PROMPTS, max_new_tokens=8, do_sample=True, temperature=1.5, seed=3)
    assert result.model.generate(PROMPTS, max_new_tokens=8, do_sample=True, temperature=1.5, seed=3) == sampled
    if method == "qlora":  # the reload quantized the base again, as in training
        import bitsandbytes as bnb

        assert any(isinstance(m, bnb.nn.Linear4bit) for m in reloaded.model.modules())


def test_generate_command_prints_one_json_line_per_prompt(runs):
    result = CliRunner().invoke(app, ["generate", str(runs["lora"].run_dir), *PROMPTS, "--max-new-tokens", "5"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.strip().splitlines()]
    assert [r["prompt"] for r in rows] == PROMPTS
    assert [r["response"] for r in rows] == load(runs["lora"].run_dir).generate(PROMPTS, max_new_tokens=5)


def test_generate_reads_prompts_and_chats_from_jsonl(runs, tmp_path):
    chat = [{"role": "user", "content": PROMPTS[1]}]
    inputs = tmp_path / "prompts.jsonl"
    inputs.write_text("\n".join(json.dumps(v) for v in (PROMPTS[0], {"prompt": PROMPTS[1]}, {"messages": chat})) + "\n")
    result = CliRunner().invoke(app, ["generate", str(runs["lora"].run_dir), "--input", str(inputs),
                                      "--max-new-tokens", "5"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.strip().splitlines()]
    assert [r["prompt"] for r in rows] == [PROMPTS[0], PROMPTS[1], chat]
    assert rows[1]["response"] == rows[2]["response"]  # the same user turn, as a string or a chat

    inputs.write_text(json.dumps({"text": PROMPTS[0]}) + "\n")
    result = CliRunner().invoke(app, ["generate", str(runs["lora"].run_dir), "--input", str(inputs)])
    assert result.exit_code == 2
    assert 'line 1: expected a JSON string, {"prompt": ...} or {"messages": [...]}' in result.output


# --- merge -------------------------------------------------------------------------------------

def _logits(model, tokenizer):
    ids = torch.tensor([prompt_ids(tokenizer, [{"role": "user", "content": p}]) for p in PROMPTS[:1]])
    with torch.no_grad():
        return model.eval()(input_ids=ids).logits.float().numpy()


def test_lora_merge_gives_the_unmerged_logits(runs, tmp_path):
    from transformers import AutoModelForCausalLM

    from domainft.merge import merge_run

    trained = load(runs["lora"].run_dir)
    merged = merge_run(runs["lora"].run_dir, tmp_path / "merged", echo=lambda *a: None)
    plain = AutoModelForCausalLM.from_pretrained(merged.dir)
    np.testing.assert_allclose(_logits(plain, trained.tokenizer), _logits(trained.model, trained.tokenizer), atol=1e-5)
    assert merged.loss_merged == pytest.approx(merged.loss_adapter, abs=1e-5)


def test_qlora_merges_into_a_full_precision_base_and_says_so(runs, tmp_path, tiny_decoder):
    import bitsandbytes as bnb
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from domainft.merge import merge_run

    said = []
    merged = merge_run(runs["qlora"].run_dir, tmp_path / "merged", echo=said.append)
    assert any("not into the 4-bit NF4 weights" in line for line in said)
    plain = AutoModelForCausalLM.from_pretrained(merged.dir)
    assert not any(isinstance(m, bnb.nn.Linear4bit) for m in plain.modules())
    assert plain.dtype == torch.float32
    # The same adapter on the unquantized base, unmerged: merging changes nothing else.
    unmerged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_decoder),
                                         runs["qlora"].model_dir)
    tok = runs["qlora"].model.tokenizer
    np.testing.assert_allclose(_logits(plain, tok), _logits(unmerged, tok), atol=1e-5)
    assert merged.loss_adapter is not None and merged.loss_merged is not None


def test_export_and_merge_point_at_each_other(runs, tmp_path):
    from domainft.export import export_run
    from domainft.merge import merge_run

    with pytest.raises(DomainftError, match="domainft merge"):
        export_run(runs["lora"].run_dir)
    (tmp_path / "clf" / "model").mkdir(parents=True)  # what merge reads first: the manifest's task
    (tmp_path / "clf" / "model" / "domainft.json").write_text(json.dumps({"task": "classification"}))
    with pytest.raises(DomainftError, match=r"classification run; `domainft export"):
        merge_run(tmp_path / "clf")


# --- recipe and data errors --------------------------------------------------------------------

@pytest.mark.parametrize("task, override, message", [
    ("classification", {"tuning.method": "qlora"}, r"tuning.method: qlora applies to task: generation only"),
    ("ner", {"tuning.method": "qlora"}, r"tuning.method: qlora applies to task: generation only"),
    ("classification", {"data.response_column": "answer"}, r"data.response_column: applies to task: generation only"),
    ("classification", {"generation.max_new_tokens": 9}, r"generation: applies to task: generation only"),
    ("generation", {"data.text_column": "question"}, r"data.text_column: .*data.prompt_column"),
    ("generation", {"data.format": "csv"}, r"data.format: task: generation reads jsonl"),
    ("generation", {"lexicon": ["lexicons/legal.txt"]}, r"lexicon: not supported with task: generation"),
    ("generation", {"train.label_smoothing": 0.1}, r"train.label_smoothing: applies to tasks classification / ner"),
    ("generation", {"export.enabled": True}, r"export.enabled: .*domainft merge"),
    ("generation", {"train.early_stopping.metric": "macro_f1"}, r"'macro_f1' is not a metric this task reports"),
    ("generation", {"train.early_stopping.metric": "exact_match", "generation.score_responses": "never"},
     r"exact_match needs scored generations"),
])
def test_impossible_combinations_are_recipe_errors(tmp_path, task, override, message):
    data = {"path": str(tmp_path / "x.jsonl")} if task == "generation" else {"path": str(tmp_path / "x.csv")}
    with pytest.raises(RecipeError, match=message):
        Recipe.from_dict({"task": task, "data": data}).override(override)


@pytest.mark.parametrize("row, message", [
    ({"prompt": "Who pays?", "answer": "the customer"},
     r"line 1: no 'response' field \(data.response_column\); the line has: prompt, answer"),
    ({"prompt": "Who pays?", "response": ""}, r"line 1: 'response' \(data.response_column\) must be a non-empty"),
    ({"messages": [{"role": "user", "content": "Who pays?"}]}, r"line 1: the last message must be the assistant's"),
    ({"messages": [{"role": "judge", "content": "x"}]}, r"line 1: message 0 must be"),
])
def test_bad_rows_are_data_errors_naming_the_line(tmp_path, tiny_decoder, row, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(row) + "\n" + json.dumps(row) + "\n")
    chat = {"data.messages_column": "messages"} if "messages" in row else {}
    recipe = gen_recipe(tiny_decoder, path, tmp_path / "out", **chat)
    with pytest.raises(DataError, match=message):
        quiet_run(recipe)
    assert not (tmp_path / "out").exists()


def test_a_prompt_longer_than_max_length_is_a_data_error(tmp_path, tiny_decoder):
    path = write_pairs(tmp_path / "p.jsonl", n=20)
    with pytest.raises(DataError, match=r"p.jsonl line \d+: the prompt alone is \d+ tokens .*data.max_length \(16\)"):
        quiet_run(gen_recipe(tiny_decoder, path, tmp_path / "out", **{"data.max_length": 16}))


def test_scored_early_stopping_needs_short_answers(tmp_path, tiny_decoder):
    path = tmp_path / "long.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"Explain clause {i}.", "response": "a long answer " * 5})
                            + "\n" for i in range(20)))
    recipe = gen_recipe(tiny_decoder, path, tmp_path / "out", **{"train.early_stopping.metric": "token_f1"})
    with pytest.raises(DomainftError, match=r"token_f1 scores generated answers, but .* longest has 15 words"):
        quiet_run(recipe)
    assert not (tmp_path / "out").exists()


def test_an_encoder_base_is_refused_for_generation(tmp_path, tiny_base, pairs_file):
    with pytest.raises(DomainftError, match=r"task: generation needs a decoder \(causal LM\) base"):
        quiet_run(gen_recipe(tiny_base, pairs_file, tmp_path / "out", **{"tuning.method": "lora"}))


def test_answers_are_scored_squad_style():
    assert exact_match("The Supplier.", "supplier") == 1.0
    assert exact_match("the customer", "supplier") == 0.0
    assert token_f1("the licensee pays", "licensee") == pytest.approx(2 * 0.5 * 1 / 1.5)


def test_models_lists_the_packaged_decoder():
    result = CliRunner().invoke(app, ["models"])
    assert result.exit_code == 0 and "smollm2" in result.output
    result = CliRunner().invoke(app, ["models", "--prepare", "nonesuch"])
    assert result.exit_code == 2 and "not a packaged alias" in result.output


def test_a_shared_cache_directory_is_published_once(tmp_path):
    from domainft.atomic import published_once

    final = tmp_path / "cache" / "base"
    with published_once(final) as tmp:
        (tmp / "config.json").write_text("first")
    with published_once(final) as tmp:  # another process lost the race: its copy is dropped
        (tmp / "config.json").write_text("second")
    assert (final / "config.json").read_text() == "first"
    assert [p.name for p in final.parent.iterdir()] == ["base"]


def test_response_loss_equals_the_models_own(tiny_decoder, tokenizer):
    """The loss computed with the LM head on response positions only is the model's loss."""
    from transformers import AutoModelForCausalLM

    from domainft.tasks import get_task
    from domainft.tasks.generation import response_loss

    collate = get_task("generation").collator(tokenizer)
    rows = []
    for prompt, answer in zip(PROMPTS, ("the supplier", "the customer keeps the records")):
        ids, labels, _ = encode_pair(tokenizer, [{"role": "user", "content": prompt}], answer, 128)
        rows.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels})
    batch = collate(rows)
    model = AutoModelForCausalLM.from_pretrained(tiny_decoder).eval()
    with torch.no_grad():
        expected = model(**batch).loss
        got = response_loss(model, batch)
        total = int((batch["labels"] != IGNORE).sum())
        summed = response_loss(model, batch, num_items_in_batch=torch.tensor(2 * total))
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    assert summed.item() == pytest.approx(expected.item() / 2, rel=1e-5)  # normalised by the count given


# --- packaged GGUF bases -----------------------------------------------------------------------

def _write_tiny_gguf(path, tokenizer):
    """A 2-layer Llama GGUF (float32 tensors) with the tiny tokenizer's byte-level BPE vocabulary,
    its ChatML template and SmolLM2's token ids; the GGUF tokenizer metadata puts BOS before every
    text and calls <|im_start|> the end token, as the packaged SmolLM2 file does."""
    import gguf

    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    tokens = sorted(spec["model"]["vocab"], key=spec["model"]["vocab"].get)
    for added in spec["added_tokens"]:
        tokens[added["id"]] = added["content"]
    hidden, inner, heads, kv = 32, 64, 4, 2
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(128), w.add_embedding_length(hidden), w.add_feed_forward_length(inner)
    w.add_block_count(2), w.add_head_count(heads), w.add_head_count_kv(kv), w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5), w.add_vocab_size(len(tokens))
    w.add_tokenizer_model("gpt2"), w.add_tokenizer_pre("default"), w.add_token_list(tokens)
    w.add_token_types([3 if t.startswith("<|") else 1 for t in tokens])
    w.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]])
    w.add_bos_token_id(1), w.add_eos_token_id(2), w.add_unk_token_id(0), w.add_chat_template(tokenizer.chat_template)
    rng = np.random.default_rng(0)

    def rand(*shape):
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    w.add_tensor("token_embd.weight", rand(len(tokens), hidden))
    w.add_tensor("output_norm.weight", np.ones(hidden, np.float32))
    for b in range(2):
        for name, shape in [("attn_q", (hidden, hidden)), ("attn_k", (hidden // heads * kv, hidden)),
                            ("attn_v", (hidden // heads * kv, hidden)), ("attn_output", (hidden, hidden)),
                            ("ffn_gate", (inner, hidden)), ("ffn_up", (inner, hidden)), ("ffn_down", (hidden, inner))]:
            w.add_tensor(f"blk.{b}.{name}.weight", rand(*shape))
        for name in ("attn_norm", "ffn_norm"):
            w.add_tensor(f"blk.{b}.{name}.weight", np.ones(hidden, np.float32))
    w.write_header_to_file(), w.write_kv_data_to_file(), w.write_tensors_to_file(), w.close()


def test_a_gguf_base_converts_to_an_equivalent_safetensors_directory(tmp_path, tokenizer):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from domainft.bases import ALIASES
    from domainft.gguf import convert_gguf

    _write_tiny_gguf(tmp_path / "tiny.gguf", tokenizer)
    out = tmp_path / "converted"
    out.mkdir()
    convert_gguf(tmp_path / "tiny.gguf", out, ALIASES["smollm2"].special_tokens)
    assert (out / "model.safetensors").is_file()
    converted = AutoModelForCausalLM.from_pretrained(out)
    assert getattr(converted.config, "quantization_config", None) is None
    reference = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="tiny.gguf")
    tok = AutoTokenizer.from_pretrained(out)
    ids = torch.tensor([tok(PROMPTS[0])["input_ids"]])
    with torch.no_grad():
        np.testing.assert_array_equal(converted(ids).logits.numpy(), reference(ids).logits.numpy())
    # As the upstream tokenizer: no BOS glued to every text, the turn ends with <|im_end|>, pads with it.
    assert tok.decode(ids[0]) == PROMPTS[0] and ids[0, 0] != tok.bos_token_id
    assert (tok.eos_token, tok.pad_token) == ("<|im_end|>", "<|im_end|>")
    assert tok.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False) == \
        tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False)
    assert converted.generation_config.eos_token_id == tok.eos_token_id
