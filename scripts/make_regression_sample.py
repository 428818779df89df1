"""Write the small finance headline sentiment-score sample in data/ (project-written, synthetic, seeded).

One JSON object per line in the layout of SemEval-2017 task 5's headlines file
(`../shared/datasets/semeval2017_task5_headlines/Headline_Trainingdata.json`: `id`, `company`,
`title`, `sentiment` in [-1, 1]), so recipes/finance_sentiment_scores.yaml runs on the real file with
one override of data.path. Companies and headlines are invented: a headline is an event phrase with
a polarity, often softened or sharpened by a qualifier; its score is the polarity times the
qualifier's weight plus a little rater noise, rounded to three decimals. Two rows repeat another
(the loader removes them) and one headline is scored twice differently (the loader averages it).
Re-run to regenerate:
    python scripts/make_regression_sample.py
"""
import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "data" / "finance_sentiment_scores_sample.jsonl"
ROWS = 400
COMPANIES = ["Kallio Group", "Tundra Mining", "Norvale Bank", "Brightwater Retail", "Ostara Pharma",
             "Helmsford Energy", "Quarry Lane Homes", "Vesta Telecom", "Arden Logistics", "Corvid Software",
             "Pellham Insurance", "Maribel Foods"]
# (event phrase, polarity in [-1, 1])
EVENTS = [
    ("posts record quarterly profit", 0.8), ("beats full-year earnings forecasts", 0.7),
    ("raises dividend after strong sales", 0.6), ("wins major government contract", 0.55),
    ("shares rise on takeover interest", 0.5), ("reports steady revenue growth", 0.35),
    ("opens new distribution centre", 0.2), ("confirms annual general meeting date", 0.0),
    ("appoints new finance director", 0.05), ("keeps outlook unchanged", -0.05),
    ("sees sales slow in second quarter", -0.3), ("cuts full-year guidance", -0.55),
    ("shares fall after profit warning", -0.65), ("announces 300 job cuts", -0.6),
    ("faces regulator probe over accounts", -0.7), ("swings to annual loss", -0.75),
    ("suspends dividend as debt mounts", -0.8),
]
# (qualifier prefix, weight on the event's polarity)
QUALIFIERS = [("", 1.0), ("", 1.0), ("", 1.0), ("unexpectedly ", 1.2), ("sharply ", 1.25),
              ("modestly ", 0.6), ("reportedly ", 0.8)]
TAILS = ["", "", " in Europe", " as demand shifts", " amid market turmoil", ", analysts say", " - sources"]


def headline(rng: random.Random) -> tuple[str, str, float]:
    company = rng.choice(COMPANIES)
    event, polarity = rng.choice(EVENTS)
    qualifier, weight = rng.choice(QUALIFIERS)
    words = event.split(" ", 1)
    title = f"{company} {qualifier}{words[0]} {words[1]}{rng.choice(TAILS)}"
    score = max(-1.0, min(1.0, polarity * weight + rng.gauss(0, 0.05)))
    return company, title, round(score, 3)


def main() -> None:
    rng = random.Random(2017)
    rows = []
    for i in range(ROWS):
        company, title, score = headline(rng)
        rows.append({"id": i + 1, "company": company, "title": title, "sentiment": score})
    rows += [dict(rows[5], id=ROWS + 1), dict(rows[17], id=ROWS + 2)]  # exact duplicates
    rows.append(dict(rows[30], id=ROWS + 3, sentiment=round(rows[30]["sentiment"] + 0.1, 3)))  # rated twice
    OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"wrote {len(rows)} rows to {OUT}")


if __name__ == "__main__":
    main()
