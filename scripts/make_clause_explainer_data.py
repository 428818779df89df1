"""Write the clause-explainer instruction pairs in data/ (project-written, synthetic, seeded).

Each line of data/clause_explainer.jsonl is {"prompt": ..., "response": ...}: a request to explain a
contract clause (several phrasings) and a short plain-language answer (20-34 words: responses stay
short so the recipe trains on 2 CPU cores) saying what the clause does, who carries the risk and how
much, and what to negotiate. Clauses, parties and numbers are filled into
templates for 14 clause families (indemnity, liability cap, auto-renewal, non-compete, ...); the
risk level follows from the numbers (a 180-day non-renewal notice is riskier than a 30-day one).
Nothing is copied from any corpus. Re-run to regenerate:
    python scripts/make_clause_explainer_data.py
"""
import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "data" / "clause_explainer.jsonl"
PAIRS = 360
SEED = 11

# (stronger party, weaker party): the first usually drafts the clause.
ROLES = [("Supplier", "Customer"), ("Licensor", "Licensee"), ("Provider", "Client"), ("Company", "Contractor"),
         ("Landlord", "Tenant"), ("Vendor", "Reseller"), ("Lender", "Borrower"), ("Franchisor", "Franchisee")]
LAWS = ["the State of New York", "the State of Delaware", "England and Wales", "Singapore", "the State of Texas",
        "Ontario"]
REGIONS = ["the United States", "the European Union", "North America", "any country where the Company operates",
           "a 50-mile radius of any of its offices"]
ASKS = [
    "Explain this clause and its risk:\n{clause}",
    "I am the {weak}. Is this clause risky for me?\n{clause}",
    "Summarize this clause in plain English:\n{clause}",
    "What does this clause mean for the {weak}?\n{clause}",
    "Review this clause between the {strong} and the {weak}:\n{clause}",
]


def pick(rng, options):
    return rng.choice(options)


def indemnity(rng, strong, weak):
    mutual = rng.random() < 0.3
    if mutual:
        clause = ("Each party shall indemnify and hold harmless the other party from third-party claims "
                  "arising from its own breach of this Agreement or its own negligence.")
        return clause, (f"A mutual indemnity: each side covers claims caused by its own breach or negligence. "
                        f"Risk for the {weak}: low. It is balanced.")
    clause = (f"The {weak} shall indemnify, defend and hold harmless the {strong} from any and all claims, "
              f"losses and damages arising out of or relating to this Agreement.")
    return clause, (f"A one-sided, uncapped indemnity: the {weak} pays all the {strong}'s losses, even ones the "
                    f"{strong} caused. Risk for the {weak}: high. Ask for a mutual indemnity and a cap.")


def liability_cap(rng, strong, weak):
    months = pick(rng, [1, 3, 6, 12, 24])
    clause = (f"In no event shall the {strong}'s aggregate liability under this Agreement exceed the fees paid "
              f"by the {weak} in the {months} months preceding the claim.")
    level = "high" if months <= 3 else "medium" if months <= 12 else "low"
    return clause, (f"The {strong} never owes more than {months} months of fees; the {weak} bears any larger "
                    f"loss. Risk for the {weak}: {level}. Ask for a 12-month cap that excludes fraud.")


def auto_renewal(rng, strong, weak):
    term = pick(rng, ["one-year", "two-year", "three-year"])
    days = pick(rng, [30, 60, 90, 180])
    clause = (f"This Agreement shall automatically renew for successive {term} terms unless either party gives "
              f"written notice of non-renewal at least {days} days before the end of the then-current term.")
    level = "high" if days >= 90 else "medium"
    return clause, (f"The contract renews for another {term} term unless cancelled {days} days before it ends; "
                    f"missing that date locks the {weak} in. Risk for the {weak}: {level}. Ask for shorter notice.")


def termination_convenience(rng, strong, weak):
    days = pick(rng, [0, 10, 30, 90])
    notice = "immediately upon written notice" if days == 0 else f"upon {days} days' written notice"
    clause = f"The {strong} may terminate this Agreement at any time and for any reason {notice}."
    level = "high" if days <= 10 else "medium" if days <= 30 else "low"
    return clause, (f"Only the {strong} may end the contract without cause, {notice}. Risk for the {weak}: "
                    f"{level}. Ask for the same right, longer notice and payment for work done.")


def unilateral_amendment(rng, strong, weak):
    clause = (f"The {strong} may amend these terms at any time by posting revised terms on its website; the "
              f"{weak}'s continued use of the services after posting constitutes acceptance.")
    return clause, (f"The {strong} can change the terms alone, and using the services means accepting them. "
                    f"Risk for the {weak}: high. Require written notice and a right to terminate.")


def non_compete(rng, strong, weak):
    years = pick(rng, [1, 2, 3, 5])
    region = pick(rng, REGIONS)
    clause = (f"During the term and for {years} years thereafter, the {weak} shall not engage in any business "
              f"that competes with the {strong} within {region}.")
    level = "high" if years >= 3 else "medium"
    return clause, (f"A non-compete: the {weak} may not compete in {region} until {years} years after the "
                    f"contract ends. Risk for the {weak}: {level}. Narrow its length and territory.")


def governing_law(rng, strong, weak):
    law = pick(rng, LAWS)
    clause = (f"This Agreement shall be governed by the laws of {law}, and the parties submit to the exclusive "
              f"jurisdiction of the courts of {law}.")
    return clause, (f"Disputes are decided under the law and only in the courts of {law}, which may be far "
                    f"from the {weak}. Risk for the {weak}: medium. Ask for a neutral forum.")


def assignment(rng, strong, weak):
    clause = (f"The {weak} may not assign or transfer this Agreement without the prior written consent of the "
              f"{strong}, which may be withheld in its sole discretion, while the {strong} may assign it freely.")
    return clause, (f"The {weak} cannot transfer the contract without the {strong}'s consent, which can be "
                    f"refused. Risk for the {weak}: medium. Ask that consent not be unreasonably withheld.")


def late_interest(rng, strong, weak):
    rate = pick(rng, [0.5, 1, 1.5, 2, 5])
    clause = f"Any amount not paid when due shall bear interest at {rate}% per month until paid in full."
    yearly = round(rate * 12, 1)
    level = "high" if rate >= 2 else "medium" if rate >= 1 else "low"
    return clause, (f"Late payments cost {rate}% a month, about {yearly}% a year. Risk for the {weak}: {level}. "
                    f"Ask for a lower rate and a grace period.")


def ip_assignment(rng, strong, weak):
    pre = rng.random() < 0.5
    extra = ", including any pre-existing materials," if pre else ""
    clause = (f"All intellectual property created by the {weak} in connection with the services{extra} shall "
              f"vest exclusively in the {strong}.")
    level = "high" if pre else "medium"
    note = f" It even takes the {weak}'s pre-existing materials." if pre else ""
    return clause, (f"Everything the {weak} creates belongs to the {strong}.{note} Risk for the {weak}: {level}. "
                    f"Keep pre-existing materials and license them instead.")


def confidentiality(rng, strong, weak):
    years = pick(rng, [None, 2, 5])
    period = "in perpetuity" if years is None else f"for {years} years after termination"
    clause = (f"The receiving party shall keep all Confidential Information strictly confidential {period} and "
              f"shall not disclose it to any third party.")
    level = "medium" if years is None else "low"
    return clause, (f"Both parties must keep confidential information secret {period}. Risk for the {weak}: "
                    f"{level}. Check the usual exceptions, such as public information.")


def liquidated_damages(rng, strong, weak):
    amount = pick(rng, ["$500", "$1,000", "$5,000", "$10,000"])
    capped = rng.random() < 0.4
    cap = ", up to a maximum of 10% of the contract price" if capped else ""
    clause = (f"If the {weak} fails to deliver by the agreed delivery date, the {weak} shall pay the {strong} "
              f"{amount} per day of delay as liquidated damages{cap}.")
    level = "medium" if capped else "high"
    limit = "capped at 10% of the price" if capped else "with no upper limit"
    return clause, (f"Each day of late delivery costs the {weak} {amount}, {limit}. Risk for the {weak}: "
                    f"{level}. Ask for a cap and a grace period.")


def arbitration(rng, strong, weak):
    clause = (f"Any dispute shall be resolved by binding arbitration administered by an arbitrator chosen by the "
              f"{strong}, and the {weak} waives any right to a jury trial or to join a class action.")
    return clause, (f"Disputes go to an arbitrator the {strong} picks, and the {weak} loses jury trials and "
                    f"class actions. Risk for the {weak}: high. Ask for a neutral arbitrator.")


def audit(rng, strong, weak):
    days = pick(rng, [1, 5, 30])
    clause = (f"The {strong} may audit the {weak}'s books and records relating to this Agreement upon {days} "
              f"days' notice, at the {weak}'s expense.")
    level = "high" if days <= 5 else "medium"
    return clause, (f"The {strong} can audit the {weak}'s records on {days} days' notice, at the {weak}'s cost. "
                    f"Risk for the {weak}: {level}. Limit audits to once a year at the {strong}'s cost.")


FAMILIES = [indemnity, liability_cap, auto_renewal, termination_convenience, unilateral_amendment, non_compete,
            governing_law, assignment, late_interest, ip_assignment, confidentiality, liquidated_damages,
            arbitration, audit]


def make_pairs(n: int = PAIRS, seed: int = SEED) -> list[dict]:
    rng = random.Random(seed)
    pairs, seen = [], set()
    while len(pairs) < n:
        strong, weak = pick(rng, ROLES)
        clause, answer = pick(rng, FAMILIES)(rng, strong, weak)
        prompt = pick(rng, ASKS).format(clause=clause, strong=strong, weak=weak)
        if prompt not in seen:  # the loader would drop exact repeats anyway
            seen.add(prompt)
            pairs.append({"prompt": prompt, "response": answer})
    return pairs


def main() -> None:
    pairs = make_pairs()
    OUT.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in pairs), encoding="utf-8")
    print(f"wrote {len(pairs)} pairs to {OUT}")


if __name__ == "__main__":
    main()
