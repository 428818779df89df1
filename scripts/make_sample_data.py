"""Write the small finance-sentiment sample in data/ (project-written, synthetic, seeded).

The sample uses Financial PhraseBank's distribution format (`sentence@label`, latin-1) so that the
finance recipe runs on the real corpus with one override of data.path. Re-run to regenerate:
    python scripts/make_sample_data.py
"""
import random
from pathlib import Path

COMPANIES = ["Nordvik Oyj", "Kallio Group", "Baltic Paper", "Aurora Telecom", "Helmi Foods",
             "Saaristo Shipping", "Tundra Mining", "Lumo Energy", "Vesta Retail", "Koski Steel",
             "Pohjola Software", "Ilves Bank", "Marja Pharma", "Rauta Machinery", "Sävel Media"]
METRICS = ["operating profit", "net sales", "net profit", "order intake", "pre-tax profit",
           "comparable EBIT", "revenue", "cash flow from operations"]
PERIODS = ["in the third quarter", "in the first half of the year", "in 2008", "for the full year",
           "in January-September", "in the second quarter", "in the fourth quarter"]
SEGMENTS = ["its packaging unit", "the Russian market", "its Baltic operations", "the consumer business",
            "its service division", "the Asian market"]

POSITIVE = [
    "{c} said its {m} rose to EUR {a} mn {p} from EUR {b} mn a year earlier .",
    "{c} {m} increased by {pct} % {p} .",
    "{c} won a EUR {a} mn order to supply equipment to a customer in Sweden .",
    "Demand in {s} remained strong and {c} raised its outlook for the year .",
    "{c} expects its {m} to grow clearly {p} .",
    "Shares of {c} climbed {pct} % after the company reported better-than-expected {m} .",
    "{c} turned to an operating profit of EUR {a} mn {p} .",
    "The board of {c} proposes a dividend increase to EUR 0.{d} per share .",
]
NEGATIVE = [
    "{c} said its {m} fell to EUR {b} mn {p} from EUR {a} mn a year earlier .",
    "{c} {m} decreased by {pct} % {p} .",
    "{c} will cut {n} jobs as demand in {s} weakens .",
    "{c} issued a profit warning and now expects its {m} to decline {p} .",
    "Shares of {c} dropped {pct} % after the company lowered its guidance .",
    "{c} swung to an operating loss of EUR {a} mn {p} .",
    "The weak market in {s} pushed {c} into a net loss {p} .",
]
NEUTRAL = [
    "{c} will publish its interim report {p} on Thursday .",
    "{c} operates {n} stores in Finland and the Baltic countries .",
    "The company {c} is headquartered in Helsinki and employs about {n} people .",
    "{c} signed an agreement to acquire a minority stake in a logistics firm ; terms were not disclosed .",
    "{c} has appointed a new chief financial officer , effective from 1 March .",
    "The annual general meeting of {c} will be held in Espoo in April .",
    "{c} serves customers in {s} through its subsidiary .",
    "According to {c} , the transaction is subject to regulatory approval .",
    "{c} shares are listed on the main market of the stock exchange .",
    "{c} will present its strategy to investors at a capital markets day .",
]


def sentence(rng: random.Random, template: str) -> str:
    a = rng.randint(12, 90)
    return template.format(
        c=rng.choice(COMPANIES), m=rng.choice(METRICS), p=rng.choice(PERIODS), s=rng.choice(SEGMENTS),
        a=f"{a}.{rng.randint(0, 9)}", b=f"{rng.randint(2, a - 1)}.{rng.randint(0, 9)}",
        pct=f"{rng.randint(2, 45)}.{rng.randint(0, 9)}", n=rng.randint(20, 900), d=rng.randint(10, 95))


def main() -> None:
    rng = random.Random(13)
    rows, seen = [], set()
    for label, templates, count in (("negative", NEGATIVE, 60), ("neutral", NEUTRAL, 150),
                                    ("positive", POSITIVE, 90)):
        while sum(1 for _, lab in rows if lab == label) < count:
            text = sentence(rng, rng.choice(templates))
            if text not in seen:
                seen.add(text)
                rows.append((text, label))
    rng.shuffle(rows)
    rows += rows[:2]  # two exact duplicates, as the real corpus has: the loader removes them
    out = Path(__file__).resolve().parent.parent / "data" / "finance_sentiment_sample.txt"
    out.write_bytes("".join(f"{t}@{lab}\n" for t, lab in rows).encode("latin-1"))
    print(f"wrote {len(rows)} lines to {out}")


if __name__ == "__main__":
    main()
