"""How much faster is a bf16-autocast training step than an fp32 one on this CPU?

`train.precision: auto` and `adapt.precision: auto` time a few steps of the actual model on a CPU
with bf16 instructions and keep bf16 at 1.1x or more (domainft/precision.py). This script makes the same
measurement (`measure_bf16_speedup`: forward + backward, median of alternating rounds) over the
packaged bases, the heads domainft trains (sequence classification, token classification, the
masked-LM stage with its masked-positions-only forward) and two batch shapes, and prints a table.
Results: bench/results/precision_speed.json (one entry per CPU model).

    OMP_NUM_THREADS=1 .venv/bin/python bench/precision_speed.py [--bases minilm mpnet] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from domainft.atomic import write_text  # noqa: E402
from domainft.bases import prepare_base  # noqa: E402
from domainft.precision import _cpu_name, cpu_flags, measure_bf16_speedup  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "precision_speed.json"
SHAPES = [(16, 64), (32, 128)]  # (batch, tokens): FPB / NCBI-like sentences, and longer inputs
HEADS = ("sequence", "token", "masked_lm")


def model_for(path: Path, head: str):
    from transformers import AutoModelForMaskedLM, AutoModelForSequenceClassification, AutoModelForTokenClassification
    from transformers.utils import logging

    logging.set_verbosity_error()  # "newly initialized": the heads are new on purpose
    if head == "masked_lm":
        from domainft.adapt import predict_masked_positions_only

        model = AutoModelForMaskedLM.from_pretrained(path)
        predict_masked_positions_only(model)  # as adaptation trains it
        return model
    cls = AutoModelForSequenceClassification if head == "sequence" else AutoModelForTokenClassification
    return cls.from_pretrained(path, num_labels=3)


def batch_for(head: str, size: int, tokens: int) -> dict:
    import torch

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 20000, (size, tokens), generator=g)
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if head == "sequence":
        batch["labels"] = torch.randint(0, 3, (size,), generator=g)
    elif head == "token":
        batch["labels"] = torch.randint(0, 3, (size, tokens), generator=g)
    else:  # 15% of the positions masked, the rest ignored
        labels = ids.clone()
        labels[torch.rand(ids.shape, generator=g) > 0.15] = -100
        batch["labels"] = labels
    return batch


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bases", nargs="+", default=["minilm", "mpnet"])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    flags = sorted(f for f in cpu_flags() if f.startswith(("amx", "avx512_bf16", "avx512_vnni")))
    rows = []
    for base in args.bases:
        path = prepare_base(base)
        for head in HEADS:
            model = model_for(path, head)
            for size, tokens in SHAPES:
                speedup = measure_bf16_speedup(model, batch_for(head, size, tokens))
                rows.append({"base": base, "head": head, "batch": size, "tokens": tokens,
                             "bf16_speedup": round(speedup, 2)})
                print(f"{base} {head} {size}x{tokens}: bf16 {speedup:.2f}x as fast as fp32", flush=True)
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    results[_cpu_name() or "unknown CPU"] = {"flags": flags, "threads": args.threads, "torch": torch.__version__,
                                             "rows": rows}
    write_text(RESULTS, json.dumps(results, indent=2) + "\n")
    print("| base | head | batch x tokens | bf16 step speed / fp32 |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['base']} | {r['head']} | {r['batch']} x {r['tokens']} | {r['bf16_speedup']:.2f}x |")


if __name__ == "__main__":
    main()
