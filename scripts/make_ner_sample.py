"""Write the small medical NER sample in data/medical_ner/ (project-written, synthetic, seeded).

Same layout and format as the NCBI-disease corpus (train/devel/test.tsv, `token<TAB>tag`, IOB2,
blank line between sentences), so recipes/medical_ner.yaml runs on the real corpus with one
override of data.path. Some disease names occur only in devel/test, so the scores measure more
than memorisation. Re-run to regenerate:
    python scripts/make_ner_sample.py
"""
import random
import re
from pathlib import Path

SEEN = ["breast cancer", "cystic fibrosis", "Huntington disease", "type 2 diabetes", "hemophilia A",
        "Duchenne muscular dystrophy", "colorectal cancer", "ataxia telangiectasia", "myotonic dystrophy",
        "familial hypercholesterolemia", "sickle cell anemia", "Alzheimer disease", "ovarian cancer",
        "adrenoleukodystrophy", "Wilms tumor", "retinoblastoma", "phenylketonuria", "G6PD deficiency"]
UNSEEN = ["Fabry disease", "prostate cancer", "Tay-Sachs disease", "Marfan syndrome",
          "spinocerebellar ataxia type 1", "hereditary hemochromatosis", "melanoma", "Gaucher disease"]
GENES = ["BRCA1", "CFTR", "HTT", "APC", "ATM", "DMPK", "LDLR", "HBB", "APOE", "WT1", "RB1", "PAH"]
TEMPLATES = [
    "Mutations in the {g} gene cause {d} .",
    "We identified {n} novel {g} mutations in patients with {d} .",
    "The risk of {d} was higher in carriers of the {g} variant ( P < 0.0{k} ) .",
    "{D} is an autosomal recessive disorder caused by loss of {g} function .",
    "Patients with {d} and {d2} were excluded from the study .",
    "These findings suggest that {g} is a candidate gene for {d} .",
    "No association was found between the {g} polymorphism and {d} in {n} families .",
    "Screening of {n} unrelated probands with {d} revealed a deletion in exon {k} of {g} .",
    "The {g} protein was expressed at normal levels in fibroblasts from {n} healthy controls .",
    "Linkage analysis mapped the locus for {d} to chromosome {k}q .",
]


def tokens(text: str) -> list[str]:
    return re.findall(r"\w+|[^\w\s]", text)


def sentence(rng: random.Random, diseases: list[str]) -> list[tuple[str, str]]:
    template = rng.choice(TEMPLATES)
    d, d2 = rng.sample(diseases, 2)
    out: list[tuple[str, str]] = []
    for part in re.split(r"(\{d\}|\{d2\}|\{D\})", template):
        if part in ("{d}", "{d2}", "{D}"):
            name = d2 if part == "{d2}" else d
            if part == "{D}":
                name = name[0].upper() + name[1:]
            words = tokens(name)
            out += [(w, ("B-" if i == 0 else "I-") + "Disease") for i, w in enumerate(words)]
        else:
            text = part.format(g=rng.choice(GENES), n=rng.randint(2, 40), k=rng.randint(1, 9))
            out += [(w, "O") for w in tokens(text)]
    return out


def write(path: Path, sentences: list[list[tuple[str, str]]]) -> None:
    path.write_text("\n\n".join("\n".join(f"{w}\t{t}" for w, t in s) for s in sentences) + "\n",
                    encoding="utf-8")


def main() -> None:
    rng = random.Random(11)
    out = Path(__file__).resolve().parent.parent / "data" / "medical_ner"
    out.mkdir(parents=True, exist_ok=True)
    write(out / "train.tsv", [sentence(rng, SEEN) for _ in range(300)])
    write(out / "devel.tsv", [sentence(rng, SEEN + UNSEEN) for _ in range(60)])
    write(out / "test.tsv", [sentence(rng, SEEN + UNSEEN) for _ in range(60)])


if __name__ == "__main__":
    main()
