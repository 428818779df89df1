"""Write the small legal clause sample in data/ (project-written, synthetic, seeded).

The sample has the layout of CUAD's master clauses table (`../shared/datasets/cuad/master_clauses.csv.gz`),
so recipes/legal_clause_review.yaml runs on the real file with one override of data.path: gzip-compressed
CSV, `Filename`, then per category a column holding a Python list literal of clause excerpts and a
`<Category>-Answer` column; the name / parties / date columns the recipe leaves out are there too.
Contracts, parties and clauses are invented from templates (no text comes from CUAD); a few excerpts
sit under two categories, as in CUAD (a non-transferable licence grant; an assignment clause that
also covers a change of control), and a few liability clauses run to about 200 tokens.
Re-run to regenerate:
    python scripts/make_cuad_sample.py
"""
import ast
import csv
import gzip
import io
import random
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "data" / "legal_clause_sample.csv.gz"
CONTRACTS = 40
SEED = 7

COMPANIES = ["Bluefin Analytics, Inc.", "Corrado Logistics LLC", "Halvorsen Medical Devices AS",
             "Kestrel Software Corp.", "Meridian Foods Group plc", "Northgate Pharma, Inc.",
             "Oakridge Energy Partners LP", "Pinecrest Retail Holdings", "Quillon Media Ltd.",
             "Redwater Semiconductors, Inc.", "Saltmarsh Biotech GmbH", "Tamarind Hotels Corp.",
             "Umbra Security Systems", "Vantor Mobility Inc.", "Westfall Capital Advisors LLC",
             "Yellowpine Outdoor Co.", "Zephyr Cloud Services, Inc.", "Ashby Diagnostics Ltd."]
KINDS = ["Distribution Agreement", "License Agreement", "Supply Agreement", "Services Agreement",
         "Co-Branding Agreement", "Reseller Agreement", "Outsourcing Agreement", "Hosting Agreement"]
ROLES = {"Distribution Agreement": ("Supplier", "Distributor"), "License Agreement": ("Licensor", "Licensee"),
         "Supply Agreement": ("Supplier", "Purchaser"), "Services Agreement": ("Provider", "Customer"),
         "Co-Branding Agreement": ("Company", "Partner"), "Reseller Agreement": ("Vendor", "Reseller"),
         "Outsourcing Agreement": ("Service Provider", "Client"), "Hosting Agreement": ("Host", "Customer")}
STATES = ["the State of New York", "the State of Delaware", "the State of California", "England and Wales",
          "the Commonwealth of Massachusetts", "the State of Texas", "the Province of Ontario"]
YEARS = ["one (1) year", "two (2) years", "three (3) years", "five (5) years", "eighteen (18) months"]
DAYS = ["thirty (30)", "sixty (60)", "ninety (90)", "one hundred eighty (180)"]
MONTHS = ["January", "March", "April", "June", "August", "October", "November"]
AMOUNTS = ["$1,000,000", "$250,000", "$5,000,000", "$2,000,000", "$500,000"]

# CUAD's category names, in CUAD's column order; {a}/{b}: the two roles, other slots filled below.
TEMPLATES = {
    "Expiration Date": [
        "This Agreement shall commence on the Effective Date and continue for a period of {years}, unless earlier terminated in accordance with Section {sec}.",
        "The initial term of this Agreement shall expire on {month} {day}, {year}.",
        "Unless terminated earlier as provided herein, the term of this Agreement shall end {years} after the date on which the first Product is delivered to {b}.",
        "The Term shall begin on the Effective Date and end on the {nth} anniversary thereof.",
    ],
    "Renewal Term": [
        "Thereafter, this Agreement shall automatically renew for successive periods of {years} each unless either party gives written notice of non-renewal at least {days} days before the end of the then-current term.",
        "Upon expiration of the Initial Term, the Agreement will be extended for additional one-year terms unless {a} or {b} elects not to renew.",
        "{b} may, at its option, extend the Term for one (1) additional period of {years} by written notice delivered to {a} prior to expiration.",
        "This Agreement shall renew on a year-to-year basis following the initial term, subject to the termination rights set out below.",
    ],
    "Governing Law": [
        "This Agreement shall be governed by and construed in accordance with the laws of {state}, without regard to its conflict of laws principles.",
        "The validity, interpretation and performance of this Agreement shall be governed by the laws of {state}.",
        "Any dispute arising out of or relating to this Agreement shall be governed by the substantive law of {state}, excluding the United Nations Convention on Contracts for the International Sale of Goods.",
        "This Agreement and all claims arising hereunder are subject to the laws of {state}, and the parties submit to the exclusive jurisdiction of its courts.",
    ],
    "Non-Compete": [
        "During the Term and for {years} thereafter, {b} shall not, directly or indirectly, manufacture, market or sell any product that competes with the Products in the Territory.",
        "{a} agrees that it will not engage in any business that is competitive with the business of {b} within the Territory during the term of this Agreement.",
        "Neither {b} nor any of its Affiliates shall develop, license or distribute any software substantially similar to the Licensed Software for a period of {years} following termination.",
        "{b} shall not own, manage, operate or be employed by any competing enterprise located within fifty (50) miles of any {a} facility while this Agreement is in effect.",
    ],
    "Exclusivity": [
        "{a} hereby appoints {b} as its exclusive distributor of the Products in the Territory, and {a} shall not appoint any other distributor or sell the Products directly in the Territory.",
        "{b} shall purchase all of its requirements for the Products exclusively from {a} during the Term.",
        "During the Term, {a} shall not enter into any agreement with a third party for the provision of services of the type described in Exhibit A.",
        "The rights granted to {b} under this Section are exclusive, even as to {a}, within the Field.",
    ],
    "Termination for Convenience": [
        "Either party may terminate this Agreement for any reason or no reason upon {days} days' prior written notice to the other party.",
        "{b} may terminate this Agreement at any time, without cause, by giving {a} not less than {days} days' written notice.",
        "Notwithstanding anything to the contrary, {a} may terminate this Agreement for convenience effective upon written notice, subject to payment of all amounts accrued through the date of termination.",
        "This Agreement may be terminated by {b} without penalty upon {days} days' notice if {b} determines in its sole discretion that continuing is no longer commercially reasonable.",
    ],
    "Change of Control": [
        "In the event of a Change of Control of {b}, {a} may terminate this Agreement upon written notice given within {days} days after {a} learns of such Change of Control.",
        "{b} shall notify {a} in writing within ten (10) business days following any merger, consolidation or sale of all or substantially all of its assets.",
        "If {a} is acquired by a competitor of {b}, {b} shall have the right to terminate this Agreement immediately upon notice.",
        "Any transaction by which a third party acquires more than fifty percent (50%) of the voting securities of {b} shall require the prior written consent of {a}.",
    ],
    "Anti-Assignment": [
        "Neither party may assign or transfer this Agreement, in whole or in part, without the prior written consent of the other party, which consent shall not be unreasonably withheld.",
        "{b} shall not assign any of its rights or delegate any of its obligations under this Agreement without the prior written approval of {a}; any attempted assignment in violation hereof shall be void.",
        "This Agreement is personal to {b} and may not be assigned, sublicensed or otherwise transferred by {b}, by operation of law or otherwise, without {a}'s consent.",
        "{a} may assign this Agreement to an Affiliate upon written notice to {b}, but any other assignment requires the consent of {b}.",
    ],
    "Minimum Commitment": [
        "{b} shall purchase from {a} a minimum of {units} units of the Products during each Contract Year.",
        "If {b}'s aggregate orders in any calendar quarter are less than the Minimum Quarterly Volume, {b} shall pay {a} the difference between the Minimum Quarterly Volume and actual orders.",
        "{b} agrees to spend not less than {amount} on Services in each twelve-month period of the Term.",
        "The minimum annual royalty payable by {b} shall be {amount}, creditable against earned royalties for the same year.",
    ],
    "License Grant": [
        "Subject to the terms of this Agreement, {a} hereby grants to {b} a license to use, reproduce and display the Licensed Marks solely in connection with the marketing of the Products in the Territory.",
        "{a} grants {b} a royalty-bearing license under the Licensed Patents to make, have made, use and sell Licensed Products in the Field.",
        "{b} is hereby granted the right to install and operate the Software on up to {units} servers for its internal business purposes.",
        "{a} grants to {b} a limited right to use {a}'s trade names and logos on co-branded web pages during the Term.",
    ],
    "Non-Transferable License": [
        "The license granted herein is non-transferable and non-sublicensable, except to Affiliates of {b} with the prior written consent of {a}.",
        "{b} may not sublicense, rent, lease or otherwise transfer the Software or any rights therein to any third party.",
        "The rights granted to {b} under Section {sec} are personal to {b} and may not be transferred to any successor without {a}'s written approval.",
    ],
    "Audit Rights": [
        "{a} shall have the right, upon {days} days' notice and during normal business hours, to inspect and audit the books and records of {b} relating to amounts payable hereunder.",
        "{b} shall keep complete and accurate records of all sales of Licensed Products for at least {years}, and such records shall be open to examination by an independent accountant appointed by {a}.",
        "Not more than once per calendar year, {a} or its designee may audit {b}'s facilities and systems to verify compliance with this Agreement.",
        "If any audit reveals an underpayment exceeding five percent (5%), {b} shall reimburse {a} for the reasonable costs of such audit in addition to the amount owed.",
    ],
    "Cap on Liability": [
        "In no event shall either party's aggregate liability arising out of or related to this Agreement exceed the total fees paid by {b} in the twelve (12) months preceding the claim.",
        "{a}'s total liability under this Agreement shall not exceed {amount}, whether in contract, tort or otherwise.",
        "Neither party shall be liable for any indirect, incidental, special or consequential damages, including lost profits, even if advised of the possibility of such damages.",
        "Any action against {a} arising out of this Agreement must be brought within one (1) year after the cause of action accrues.",
    ],
    "Warranty Duration": [
        "{a} warrants that the Products will be free from defects in materials and workmanship for a period of {years} from the date of delivery.",
        "For ninety (90) days following acceptance, {a} warrants that the Software will perform substantially in accordance with the Documentation.",
        "The warranty set forth in this Section shall survive for {years} after the completion of the Services.",
    ],
    "Insurance": [
        "{b} shall maintain, at its own expense, commercial general liability insurance with limits of not less than {amount} per occurrence, naming {a} as an additional insured.",
        "During the Term and for {years} thereafter, {a} shall carry product liability insurance with a reputable insurer in an amount of at least {amount}.",
        "Each party shall maintain workers' compensation insurance as required by law and shall furnish certificates of insurance to the other party upon request.",
        "{b} shall obtain and keep in force professional errors and omissions insurance covering the Services in an amount not less than {amount}.",
    ],
}
# Excerpts listed under two categories, as CUAD lists them (the recipe's multi-category policy).
DOUBLE = {
    ("License Grant", "Non-Transferable License"): "{a} hereby grants to {b} a non-exclusive, non-transferable license, without the right to sublicense, to use the Licensed Technology solely within the Territory.",
    ("Change of Control", "Anti-Assignment"): "{b} may not assign this Agreement without the consent of {a}, and for this purpose a change of control of {b} shall be deemed an assignment.",
    ("Exclusivity", "License Grant"): "{a} grants to {b} an exclusive license under the Licensed Patents to develop and commercialise Licensed Products in the Territory.",
}
# A long clause: legal drafting piles qualifications onto one sentence (~200 tokens in all).
LONG_TAIL = (" For the avoidance of doubt, the foregoing shall apply regardless of whether the relevant claim "
             "arises in contract, tort (including negligence), strict liability, breach of statutory duty or "
             "otherwise, and shall apply to each party, its Affiliates and their respective officers, directors, "
             "employees, agents, successors and permitted assigns, except to the extent that applicable law "
             "expressly prohibits such limitation, in which case the limitation shall apply to the maximum "
             "extent permitted, and the parties acknowledge that the fees payable hereunder reflect this "
             "allocation of risk, which forms an essential basis of the bargain between them.")
FRONT = ["Document Name", "Parties", "Agreement Date", "Effective Date"]
# Drafting variations that carry no category signal: a lead-in and a tail qualifier, so that one
# template gives many distinct excerpts (duplicates are removed by the loader).
LEADS = ["", "", "", "Except as otherwise provided herein, ", "Subject to Section {sec}, ",
         "The parties agree that ", "Notwithstanding Section {sec}, ", "For purposes of this Article, "]
TAILS = ["", "", "", " This Section shall survive any expiration or termination of this Agreement.",
         " Any notice under this Section shall be given in accordance with Section {sec}.",
         " The foregoing applies to the Products listed in Exhibit {exhibit}.",
         " Such obligations are in addition to those set forth in the Master Terms."]


def slots(rng: random.Random, a: str, b: str) -> dict:
    return {"a": a, "b": b, "years": rng.choice(YEARS), "days": rng.choice(DAYS), "state": rng.choice(STATES),
            "amount": rng.choice(AMOUNTS), "units": rng.choice(["500", "1,000", "2,500", "10,000"]),
            "sec": rng.choice(["4.2", "9.1", "11.3", "12"]), "month": rng.choice(MONTHS),
            "day": rng.randint(1, 28), "year": rng.randint(2001, 2012), "nth": rng.choice(["third", "fifth"]),
            "exhibit": rng.choice("ABCD")}


def vary(rng: random.Random, template: str) -> str:
    lead = rng.choice(LEADS)
    body = template if not lead or template.startswith("{") else template[0].lower() + template[1:]
    return lead + body + rng.choice(TAILS)


def contract(rng: random.Random, n: int) -> dict:
    kind = rng.choice(KINDS)
    first, second = rng.sample(COMPANIES, 2)
    a, b = ROLES[kind]
    date = f"{rng.choice(MONTHS)} {rng.randint(1, 28)}, {rng.randint(1998, 2011)}"
    row = {"Filename": f"{first.split()[0]}_{date[-4:]}_EX-10.{n}_{kind.replace(' ', '_')}.pdf",
           "Document Name": repr([kind.upper()]), "Document Name-Answer": kind.upper(),
           "Parties": repr([first, f'"{a}"', second, f'"{b}"']), "Parties-Answer": f"{first} ({a}); {second} ({b})",
           "Agreement Date": repr([date]), "Agreement Date-Answer": date,
           "Effective Date": repr([date] if rng.random() < 0.6 else []), "Effective Date-Answer": date}
    found = {category: [] for category in TEMPLATES}
    for category, templates in TEMPLATES.items():
        if rng.random() < 0.55:
            for template in rng.sample(templates, 2 if rng.random() < 0.2 else 1):
                text = vary(rng, template).format(**slots(rng, a, b))
                found[category].append(text + LONG_TAIL if category == "Cap on Liability" and rng.random() < 0.1 else text)
    for pair, template in DOUBLE.items():
        if rng.random() < 0.15:
            text = template.format(**slots(rng, a, b))
            for category in pair:
                found[category].append(text)
    for category, excerpts in found.items():
        row[category] = repr(excerpts)
        row[f"{category}-Answer"] = answer(category, excerpts)
    return row


def answer(category: str, excerpts: list[str]) -> str:
    if category in ("Expiration Date", "Renewal Term", "Governing Law", "Warranty Duration"):
        return excerpts[0][:40] if excerpts else ""
    return "Yes" if excerpts else "No"


def main() -> None:
    rng = random.Random(SEED)
    rows = [contract(rng, n) for n in range(1, CONTRACTS + 1)]
    columns = ["Filename"] + [c for name in [*FRONT, *TEMPLATES] for c in (name, f"{name}-Answer")]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    OUT.write_bytes(gzip.compress(buffer.getvalue().encode("utf-8"), mtime=0))  # mtime 0: same bytes each run
    excerpts = sum(len(ast.literal_eval(row[c])) for row in rows for c in TEMPLATES)
    print(f"wrote {OUT}: {len(rows)} contracts, {excerpts} clause excerpts in {len(TEMPLATES)} categories")


if __name__ == "__main__":
    main()
