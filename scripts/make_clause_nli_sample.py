"""Write the small contract-NLI sample in data/ (project-written, synthetic, seeded).

The sample has the shape of ContractNLI (`../shared/datasets/contract_nli`): a whole agreement and
a fixed hypothesis about it, labelled entailment (a clause says so), contradiction (a clause says
the opposite) or not_mentioned (no clause on the topic). One JSON object per (contract,
hypothesis): {"contract_id", "hypothesis", "contract", "label"}, gzip-compressed (each
contract repeats once per hypothesis). Agreements are 4-10 invented clauses (about 90-215
words, 120-280 tokens), the deciding clause anywhere in them, so that a reader that keeps only
the first 128 tokens misses many of them: recipes/clause_nli.yaml reads them in windows.
Nothing comes from ContractNLI. Re-run to regenerate:
    python scripts/make_clause_nli_sample.py
"""
import gzip
import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "data" / "clause_nli_sample.jsonl.gz"
CONTRACTS = 40
SEED = 11

PARTIES = ["Bluefin Analytics", "Corrado Logistics", "Halvorsen Medical", "Kestrel Software", "Meridian Foods",
           "Northgate Pharma", "Oakridge Energy", "Quillon Media", "Saltmarsh Biotech", "Zephyr Cloud"]
YEARS = ["two (2) years", "three (3) years", "five (5) years", "seven (7) years"]
# Per topic: the hypothesis, clauses that entail it, clauses that contradict it.
TOPICS = {
    "return": ("The Receiving Party shall return or destroy Confidential Information when the Agreement ends.",
               ["Upon termination of this Agreement, the Receiving Party shall promptly return or destroy all "
                "Confidential Information and all copies thereof.",
                "Within thirty days after the Agreement ends, the Recipient shall destroy every document holding "
                "Confidential Information and certify the destruction in writing."],
               ["The Receiving Party may retain Confidential Information after termination and is under no "
                "obligation to return or destroy it.",
                "Nothing in this Agreement requires the Recipient to return or destroy any materials once the "
                "Agreement ends."]),
    "third_parties": ("The Receiving Party may share Confidential Information with its employees.",
                      ["The Receiving Party may disclose Confidential Information to its employees and advisers "
                       "who need to know it, provided they are bound by similar duties.",
                       "Disclosure to the Recipient's staff with a need to know is permitted."],
                      ["The Receiving Party shall not disclose Confidential Information to anyone, including its "
                       "own employees, without prior written consent.",
                       "No employee of the Recipient may receive Confidential Information under any circumstances."]),
    "survival": ("Some obligations of the Agreement survive its termination.",
                 ["The obligations of confidentiality shall survive the termination of this Agreement for a "
                  "period of {years}.",
                  "Sections on confidentiality and remedies survive any expiry or termination of this Agreement."],
                 ["All obligations under this Agreement end on the date of its termination and none survive it.",
                  "Upon expiry, every duty of the parties hereunder ceases immediately and entirely."]),
    "reverse_engineering": ("The Receiving Party shall not reverse engineer the Disclosing Party's materials.",
                            ["The Receiving Party shall not decompile, disassemble or reverse engineer any "
                             "prototype, software or sample provided by the Disclosing Party.",
                             "The Recipient agrees not to analyse the composition of, or reverse engineer, any "
                             "materials received."],
                            ["The Receiving Party may analyse and reverse engineer any samples it receives for its "
                             "internal evaluation.",
                             "Reverse engineering of the materials provided is expressly permitted."]),
    "no_license": ("The Agreement grants the Receiving Party no licence to the Confidential Information.",
                   ["Nothing in this Agreement grants the Receiving Party any licence or right in the Confidential "
                    "Information, except the limited right to evaluate the Purpose.",
                    "No licence under any patent, copyright or trade secret is granted or implied by this "
                    "Agreement."],
                   ["The Disclosing Party grants the Receiving Party a non-exclusive licence to use the "
                    "Confidential Information in its products.",
                    "The Recipient receives a royalty-free licence to exploit the disclosed know-how."]),
    "injunction": ("The Disclosing Party may seek an injunction for a breach.",
                   ["The Disclosing Party shall be entitled to seek injunctive relief for any breach, in addition "
                    "to any other remedy available at law.",
                    "A breach would cause irreparable harm, and the injured party may apply for an injunction."],
                   ["The parties waive any right to injunctive or other equitable relief; damages are the sole "
                    "remedy for a breach.",
                    "No party may seek an injunction in connection with this Agreement."]),
}
BOILERPLATE = [
    "This Agreement is entered into by {a} and {b} in order to evaluate a possible business relationship "
    "(the Purpose).",
    "Confidential Information means all technical, commercial and financial information disclosed by one party "
    "to the other, in any form, that is marked as confidential or would reasonably be understood to be so.",
    "Confidential Information does not include information that is or becomes public through no fault of the "
    "Receiving Party, or that the Receiving Party already knew without restriction.",
    "Each party shall use the other's Confidential Information solely for the Purpose and protect it with at "
    "least the care it uses for its own information of like importance.",
    "This Agreement shall be governed by the laws of the State of New York, without regard to its conflict of "
    "laws principles.",
    "This Agreement constitutes the entire agreement between the parties concerning its subject matter and "
    "supersedes all prior discussions.",
    "No amendment of this Agreement is valid unless made in writing and signed by both parties.",
    "Neither party may assign this Agreement without the prior written consent of the other party.",
    "Notices under this Agreement shall be given in writing to the addresses stated above.",
    "This Agreement may be executed in counterparts, each of which is an original.",
    "The headings in this Agreement are for convenience only and do not affect its interpretation.",
    "If any provision of this Agreement is held invalid, the remaining provisions remain in full force.",
    "Nothing in this Agreement obliges either party to enter into any further agreement or transaction.",
    "The term of this Agreement is {years} from the Effective Date.",
    "All Confidential Information is provided as is, without any warranty of accuracy or completeness.",
    "Each party shall comply with all applicable export control laws in relation to the information received.",
]


def contract(rng: random.Random) -> tuple[str, dict[str, str]]:
    """An agreement's text and, per topic, what it says: entailment, contradiction or not_mentioned."""
    a, b = rng.sample(PARTIES, 2)
    fill = {"a": a, "b": b, "years": rng.choice(YEARS)}
    clauses = rng.sample(BOILERPLATE, rng.randint(2, 4))
    labels = {}
    for topic, (_, yes, no) in TOPICS.items():
        labels[topic] = rng.choices(["entailment", "contradiction", "not_mentioned"], [0.45, 0.2, 0.35])[0]
        if labels[topic] != "not_mentioned":
            clauses.insert(rng.randint(1, len(clauses)), rng.choice(yes if labels[topic] == "entailment" else no))
    text = " ".join(f"{i}. {c.format(**fill)}" for i, c in enumerate(clauses, start=1))
    return f"MUTUAL NON-DISCLOSURE AGREEMENT. {text}", labels


def main() -> None:
    rng = random.Random(SEED)
    rows = []
    for k in range(CONTRACTS):
        text, labels = contract(rng)
        for topic, (hypothesis, _, _) in TOPICS.items():
            rows.append({"contract_id": f"nda-{k:03d}", "hypothesis": hypothesis, "contract": text,
                         "label": labels[topic]})
    body = "".join(json.dumps(r) + "\n" for r in rows).encode("utf-8")
    OUT.write_bytes(gzip.compress(body, mtime=0))  # mtime 0: the same bytes on every run
    words = sorted(len(r["contract"].split()) for r in rows)
    print(f"{OUT}: {len(rows)} pairs over {CONTRACTS} contracts, contract words {words[0]}-{words[-1]}")


if __name__ == "__main__":
    main()
