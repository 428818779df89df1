"""Write the small emergency-triage sample in data/ (project-written, synthetic, seeded).

The sample has the KTAS file's layout and quirks (`../shared/datasets/ktas_triage/data.csv`), so
recipes/medical_triage.yaml runs on the real file with one override of data.path: the same 24
columns, ';'-separated, Windows-1254 (Turkish) bytes, CRLF line ends, '#BOŞ!' for a missing pain
score, '??' for a vital sign not taken, empty SpO2 cells, decimal commas (KTAS duration_min, and
some temperatures). Patients are invented: a complaint with a typical urgency, vital signs drawn
around it, the expert's KTAS level from both, the nurse's level mostly agreeing with the expert.
Re-run to regenerate:
    python scripts/make_triage_sample.py
"""
import random
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "data" / "medical_triage_sample.csv"
ROWS = 420
COLUMNS = ["Group", "Sex", "Age", "Patients number per hour", "Arrival mode", "Injury", "Chief_complain",
           "Mental", "Pain", "NRS_pain", "SBP", "DBP", "HR", "RR", "BT", "Saturation", "KTAS_RN",
           "Diagnosis in ED", "Disposition", "KTAS_expert", "Error_group", "Length of stay_min",
           "KTAS duration_min", "mistriage"]

# (spellings as triage notes write them, typical KTAS level, injury?, painful?, diagnoses)
COMPLAINTS = [
    (["cardiac arrest", "CPR", "arrest, cardiac"], 1, False, False, ["Cardiac arrest", "Ventricular fibrillation"]),
    (["unconsciousness", "mental change", "Mental change"], 1, False, False, ["Intracerebral haemorrhage", "Hypoglycaemia"]),
    (["ant. chest pain", "pain, chest", "Left chest pain", "chest discomfort"], 2, False, True,
     ["Acute coronary syndrome", "Angina pectoris, unspecified", "Acute myocardial infarction"]),
    (["dyspnea", "Dyspnea", "SOB", "shortness of breath"], 2, False, False,
     ["Pneumonia, unspecified", "Acute exacerbation of COPD", "Heart failure"]),
    (["dysarthria", "Rt. side motor weakness", "Lt. side weakness"], 2, False, False, ["Cerebral infarction"]),
    (["hematemesis", "melena", "hematochezia"], 2, False, False, ["Gastric ulcer with haemorrhage"]),
    (["post seizure", "seizure", "syncope"], 2, False, False, ["Epilepsy, unspecified", "Syncope and collapse"]),
    (["abd pain", "Abd. pain", "pain, abdominal", "abdomen pain", "RUQ pain"], 3, False, True,
     ["Acute appendicitis", "Cholecystitis", "Abdominal pain, unspecified"]),
    (["fever", "Fever", "febrile sense"], 3, False, False, ["Fever, unspecified", "Urinary tract infection"]),
    (["dizziness", "vertigo"], 3, False, False, ["Benign paroxysmal vertigo", "Dizziness and giddiness"]),
    (["headache", "H-Headache", "HA"], 3, False, True, ["Headache", "Migraine, unspecified"]),
    (["epigastric pain", "acute epigastric pain"], 3, False, True, ["Acute gastritis", "Dyspepsia"]),
    (["Lt flank pain", "Rt. flank pain"], 3, False, True, ["Ureteric calculus", "Pyelonephritis"]),
    (["general weakness", "vomiting", "palpitation"], 3, False, False, ["Dehydration", "Atrial fibrillation"]),
    (["Vaginal Bleeding"], 3, False, False, ["Threatened abortion", "Abnormal uterine bleeding"]),
    (["Open Wound", "laceration, finger", "facial injury"], 4, True, True,
     ["Open wound of finger", "Open wound of scalp", "Laceration of face"]),
    (["Ankle Injury", "arm pain, Lt", "pain, leg", "knee pain, Rt."], 4, True, True,
     ["Sprain of ankle", "Contusion of knee", "Fracture of radius, closed"]),
    (["LBP - Low back pain", "pain, low back"], 4, False, True, ["Lumbago", "Herniated disc disease"]),
    (["epistaxis", "Urticarial rash", "ocular pain, Rt.", "sore throat"], 4, False, False,
     ["Epistaxis", "Urticaria", "Conjunctivitis", "Acute pharyngitis"]),
    (["wound dressing", "suture removal", "Eczema, Eyelid"], 5, False, False, ["Aftercare", "Dermatitis"]),
    (["medication refill", "ascites tapping", "foley change"], 5, False, False,
     ["Ascites", "Encounter for medication", "Urinary catheter care"]),
]
# How often each complaint group appears (level 1 rare, as in EDs).
WEIGHTS = [1, 2, 6, 5, 3, 3, 3, 9, 6, 6, 4, 4, 3, 4, 2, 8, 8, 4, 6, 2, 2]


def vitals(rng: random.Random, sick: bool) -> dict:
    shock = sick and rng.random() < 0.5
    return {"SBP": rng.randint(70, 95) if shock else rng.randint(105, 175),
            "DBP": rng.randint(40, 60) if shock else rng.randint(60, 100),
            "HR": rng.randint(110, 145) if sick and rng.random() < 0.6 else rng.randint(60, 100),
            "RR": rng.choice([24, 26, 28, 30]) if sick and rng.random() < 0.5 else rng.choice([16, 18, 20, 20, 22]),
            "BT": round(rng.uniform(38.3, 40.2) if sick and rng.random() < 0.3 else rng.uniform(35.9, 37.4), 1),
            "Saturation": rng.randint(82, 92) if sick and rng.random() < 0.5 else rng.randint(94, 100)}


def patient(rng: random.Random) -> list[str]:
    spellings, typical, injury, painful, diagnoses = rng.choices(COMPLAINTS, WEIGHTS)[0]
    level = typical
    if rng.random() < 0.15:  # the same complaint is sometimes more, sometimes less urgent
        level = min(5, max(1, level + rng.choice([-1, 1])))
    v = vitals(rng, sick=level <= 2)
    abnormal = v["SBP"] < 90 or v["HR"] > 120 or v["RR"] >= 26 or v["Saturation"] < 90 or v["BT"] > 39
    if abnormal and level > 2:
        level -= 1
    mental = 1 if level > 1 or rng.random() < 0.3 else rng.choice([2, 3, 4])
    pain = 1 if painful or rng.random() < 0.2 else 0
    nrs = rng.randint(6, 9) if pain and level <= 3 else rng.randint(2, 5)
    nurse = level
    r = rng.random()
    if r < 0.10:
        nurse = min(5, level + 1)  # under-triage, the error the paper counts most
    elif r < 0.15:
        nurse = max(1, level - 1)
    mistriage = 0 if nurse == level else (1 if nurse < level else 2)
    cell = lambda x: "??" if rng.random() < 0.02 else str(x)  # noqa: E731 - a vital sign not taken
    bt = cell(v["BT"])
    if bt != "??" and rng.random() < 0.1:
        bt = bt.replace(".", ",")
    sat = "" if rng.random() < 0.5 else cell(v["Saturation"])
    minutes = rng.choice([1, 2, 2, 3, 3, 5]) + rng.choice([0, 0, 0.25, 0.5, 0.83])
    return [str(rng.choice([1, 2])), str(rng.choice([1, 2])), str(rng.randint(16, 95)), str(rng.randint(1, 17)),
            str(rng.choices([1, 2, 3, 4, 6], [1, 5, 9, 2, 1] if level <= 2 else [2, 2, 14, 2, 1])[0]),
            "2" if injury else "1", rng.choice(spellings), str(mental), str(pain),
            str(nrs) if pain else "#BOŞ!", cell(v["SBP"]), cell(v["DBP"]), cell(v["HR"]), cell(v["RR"]),
            bt, sat, str(nurse), rng.choice(diagnoses),
            str(rng.choice([2, 3, 7]) if level <= 2 else rng.choice([1, 1, 1, 2, 4])), str(level),
            "0" if nurse == level else str(rng.randint(1, 9)), str(rng.randint(30, 2000)),
            f"{minutes:.2f}".replace(".", ","), f"{mistriage}" if mistriage else rng.choice(["0", "0 "])]


def main() -> None:
    rng = random.Random(7)
    lines = [";".join(COLUMNS)] + [";".join(patient(rng)) for _ in range(ROWS)]
    OUT.write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1254"))
    print(f"wrote {OUT} ({ROWS} patients)")


if __name__ == "__main__":
    main()
