"""Write the small multi-label sample in data/ (project-written, synthetic, seeded).

Contract sentences tagged with the obligations they contain, any number per sentence: payment,
confidentiality, termination, liability. A sentence is one to three clause fragments, each of one
tag, so a sentence carries the set of its fragments' tags; some are boilerplate with no tag (the
empty label set). Parties, numbers and wording are invented from templates. One JSON object per
line, `{"text": ..., "labels": [...]}`; tests/contract.py and tests/test_multilabel.py train on it.
Re-run to regenerate:
    python scripts/make_multilabel_sample.py
"""
import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "data" / "clause_tags_sample.jsonl"
ROWS = 240
PARTIES = ["the Supplier", "the Customer", "the Licensee", "the Distributor", "the Vendor"]
FRAGMENTS = {
    "payment": ["{p} shall pay each invoice within {n} days", "fees are due monthly in advance",
                "late amounts bear interest at {n} percent", "{p} pays the license fee of {n} thousand euros"],
    "confidentiality": ["{p} keeps all confidential information secret", "no party may disclose the terms",
                        "trade secrets stay confidential for {n} years", "{p} returns confidential records"],
    "termination": ["{p} may terminate on {n} days notice", "either party may end this agreement for breach",
                    "the term ends after {n} months", "{p} may cancel if the other party becomes insolvent"],
    "liability": ["{p} is not liable for indirect loss", "total liability is capped at {n} thousand euros",
                  "{p} indemnifies the other party against claims", "no party is liable for delays"],
}
BOILERPLATE = ["headings are for convenience only", "this agreement may be signed in counterparts",
               "notices are given in writing", "the recitals form part of this agreement"]


def sentence(rng: random.Random) -> dict:
    n_tags = rng.choices([0, 1, 2, 3], weights=[2, 6, 3, 1])[0]
    tags = rng.sample(sorted(FRAGMENTS), n_tags)
    parts = [rng.choice(FRAGMENTS[t]) for t in tags] or [rng.choice(BOILERPLATE)]
    text = " and ".join(p.format(p=rng.choice(PARTIES), n=rng.randint(2, 90)) for p in parts)
    return {"text": f"Under section {rng.randint(1, 40)}.{rng.randint(1, 9)} , {text} .", "labels": tags}


def main() -> None:
    rng = random.Random(11)
    rows = [sentence(rng) for _ in range(ROWS)]
    OUT.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    print(f"{OUT}: {len(rows)} rows, {sum(not r['labels'] for r in rows)} with no label")


if __name__ == "__main__":
    main()
