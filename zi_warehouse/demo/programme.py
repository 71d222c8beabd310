"""The demo programme's ground truth: every project, its life cycle, money, areas and trees.

The writers in this package render this one truth into what each sender really sends (forecast
workbooks, funding-database extracts, ...), so the sources agree with each other the way real ones
mostly do. Deterministic for a given (scale, seed).

Calibration (docs/domain.md#programme-figures, fixed at every scale): programme year 2020 has exactly 91 project ideas
(projects first reported in a 2020 forecast), 64 funding applications filed in 2020 requesting
5,200,000 EUR in total, and 60 approvals (grant notices) issued in 2020.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field

from zi_warehouse.reference import Municipality, measure_types, municipalities

IDEAS_2020 = 91
APPLICATIONS_2020 = 64
REQUESTED_EUR_2020 = 5_200_000.00
APPROVALS_2020 = 60
FIRST_YEAR = 2020
#: Last reporting quarter of the demo (the quarter before "today" in the demo world).
LAST_QUARTER = (2026, 3)
#: Projects after 2020 at scale 1: about 250 Mio EUR at a mean grant of ~150 kEUR.
LATER_PROJECTS_AT_SCALE_1 = 1500

# Typical size of a measure by type: (disconnected m² low, high, EUR per m² low, high)
_MEASURE_SIZE = {
    "unsealing": (300, 4000, 90, 220),
    "swale_infiltration": (800, 12000, 25, 70),
    "swale_trench": (1000, 15000, 40, 110),
    "trench_infiltration": (600, 9000, 45, 120),
    "tree_trench": (150, 1500, 150, 400),
    "green_roof_extensive": (200, 3000, 45, 90),
    "facade_greening_cistern": (100, 800, 120, 300),
    "surface_water_routing": (2000, 30000, 15, 45),
    "planting_rainwater": (200, 3000, 60, 160),
    "feasibility_study": (0, 0, 0, 0),
}
_MEASURE_WEIGHTS = {
    "unsealing": 14,
    "swale_infiltration": 18,
    "swale_trench": 10,
    "trench_infiltration": 8,
    "tree_trench": 12,
    "green_roof_extensive": 16,
    "facade_greening_cistern": 5,
    "surface_water_routing": 7,
    "planting_rainwater": 6,
    "feasibility_study": 4,
}
_TITLE_DE = {
    "unsealing": "Entsiegelung Schulhof {place}",
    "swale_infiltration": "Muldenversickerung {place}",
    "swale_trench": "Mulden-Rigolen-System {place}",
    "trench_infiltration": "Rigolenversickerung {place}",
    "tree_trench": "Baumrigolen {place}",
    "green_roof_extensive": "Dachbegrünung {place}",
    "facade_greening_cistern": "Fassadenbegrünung mit Zisterne {place}",
    "surface_water_routing": "Abkopplung und Einleitung {place}",
    "planting_rainwater": "Klimagrün mit Regenwassernutzung {place}",
    "feasibility_study": "Machbarkeitsstudie Wasser in der Stadt {place}",
}
_PLACES = [
    "Grundschule Nord",
    "Rathausplatz",
    "Sportpark",
    "Feuerwache",
    "Marktplatz",
    "Kita Sonnenschein",
    "Stadtbibliothek",
    "Gesamtschule",
    "Bahnhofsvorplatz",
    "Wohnquartier Süd",
    "Betriebshof",
    "Friedhof Ost",
    "Hallenbad",
    "Gewerbegebiet West",
    "Parkplatz Stadthalle",
    "Jugendzentrum",
    "Verwaltungsgebäude",
    "Quartiersplatz",
    "Realschule",
    "Seniorenzentrum",
]
_FIRST_NAMES = ["Anna", "Jens", "Petra", "Murat", "Sabine", "Thomas", "Aylin", "Frank", "Katrin", "Lukas"]
_LAST_NAMES = ["Schmidt", "Yilmaz", "Becker", "Hoffmann", "Kowalski", "Schulte", "Wagner", "Krüger"]


def quarter_of(day: dt.date) -> tuple[int, int]:
    return day.year, (day.month - 1) // 3 + 1


def quarter_end(year: int, quarter: int) -> dt.date:
    month = quarter * 3
    next_first = dt.date(year + (month == 12), month % 12 + 1, 1)
    return next_first - dt.timedelta(days=1)


def quarters(first: tuple[int, int], last: tuple[int, int]):
    y, q = first
    while (y, q) <= last:
        yield y, q
        y, q = (y + 1, 1) if q == 4 else (y, q + 1)


@dataclass
class Payment:
    payment_id: str
    paid_on: dt.date
    amount_eur: float


@dataclass
class Amendment:
    amendment_no: int
    notice_date: dt.date
    approved_eur: float  # the approved amount after this amendment


@dataclass
class DemoProject:
    project_id: str  # the municipality's own project id (links forecasts and funding database)
    municipality_key: str
    title: str
    measure_type_key: str
    in_designated_area: bool
    designated_area_name: str | None
    owner_type: str  # "municipal" or "private"
    total_cost_eur: float
    funding_rate: float  # requested / total cost
    idea_date: dt.date
    disconnected_area_m2: float
    affected_surface_type: str | None  # surface before the measure (docs/domain.md#element-types)
    surface_change_m2: float  # m² of that surface changed by the measure
    trees: int
    contact_name: str
    contact_email: str
    application_id: str | None = None
    application_date: dt.date | None = None
    decision_date: dt.date | None = None
    decision: str | None = None  # "approved" or "rejected"
    approval_id: str | None = None
    approved_eur: float | None = None  # initial grant notice
    amendments: list[Amendment] = field(default_factory=list)
    construction_start: dt.date | None = None
    completion_date: dt.date | None = None
    withdrawn_date: dt.date | None = None
    payments: list[Payment] = field(default_factory=list)

    @property
    def requested_eur(self) -> float:
        return round(self.total_cost_eur * self.funding_rate, 2)

    @property
    def current_approved_eur(self) -> float | None:
        if self.amendments:
            return self.amendments[-1].approved_eur
        return self.approved_eur

    def status_on(self, day: dt.date) -> str | None:
        """Life-cycle status (seeds/project_statuses.csv) at the end of ``day``; None before the idea."""
        if day < self.idea_date:
            return None
        if self.withdrawn_date and day >= self.withdrawn_date:
            return "withdrawn"
        if self.completion_date and day >= self.completion_date:
            return "completed"
        if self.construction_start and day >= self.construction_start:
            return "in_construction"
        if self.decision_date and day >= self.decision_date:
            return "approved" if self.decision == "approved" else "rejected"
        if self.application_date and day >= self.application_date:
            return "application_filed"
        if self.application_date and (self.application_date - day).days <= 120:
            return "application_in_preparation"
        return "idea"


@dataclass
class DemoProgramme:
    scale: float
    seed: int
    projects: list[DemoProject]
    active_from: dict[str, tuple[int, int]]  # municipality -> first reporting quarter

    def submissions(self):
        """(municipality_key, year, quarter) of every quarterly forecast workbook that is sent."""
        for key, first in sorted(self.active_from.items()):
            for y, q in quarters(first, LAST_QUARTER):
                yield key, y, q


def _spread_to_total(rng: random.Random, n: int, total: float, low: float, high: float) -> list[float]:
    """n amounts in [low, high] (roughly lognormal) summing to ``total`` exactly (in cents)."""
    raw = [min(high, max(low, rng.lognormvariate(11.1, 0.6))) for _ in range(n)]
    factor = total / sum(raw)
    amounts = [round(min(high, max(low, x * factor)), 2) for x in raw]
    for _ in range(1000):  # clamp-and-rescale converges quickly; fix the cents on the largest
        diff = round(total - sum(amounts), 2)
        if abs(diff) < 0.005:
            break
        i = max(range(n), key=lambda k: amounts[k]) if diff < 0 else min(range(n), key=lambda k: amounts[k])
        amounts[i] = round(amounts[i] + diff, 2)
    return amounts


def _pick_measure(rng: random.Random) -> str:
    keys = list(_MEASURE_WEIGHTS)
    return rng.choices(keys, weights=[_MEASURE_WEIGHTS[k] for k in keys])[0]


def _random_day(rng: random.Random, start: dt.date, end: dt.date) -> dt.date:
    return start + dt.timedelta(days=rng.randint(0, max(0, (end - start).days)))


def _new_project(rng, municipality: Municipality, seq: int, idea_date: dt.date) -> DemoProject:
    measure = _pick_measure(rng)
    lo, hi, eur_lo, eur_hi = _MEASURE_SIZE[measure]
    area = round(rng.uniform(lo, hi), 0)
    if measure == "feasibility_study":
        total_cost = round(rng.uniform(20_000, 90_000), 2)
    else:
        total_cost = round(area * rng.uniform(eur_lo, eur_hi), 2)
        total_cost = max(total_cost, 15_000.0)
    owner = "private" if rng.random() < 0.12 else "municipal"
    rate = 0.9 if owner == "private" else rng.choice([1.0, 1.0, 0.9, 0.8])
    in_area = owner == "private" or rng.random() < 0.7
    mt = {m["measure_type_key"]: m for m in measure_types()}[measure]
    trees = 0
    if measure in ("tree_trench", "planting_rainwater"):
        trees = rng.randint(3, 40)
    elif measure == "unsealing":
        trees = rng.randint(0, 8)
    first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
    mail_last = last.lower().replace("ü", "ue").replace("ö", "oe")
    return DemoProject(
        project_id=f"{municipality.key.replace('_', '')[:6].upper()}-{idea_date.year}-{seq:03d}",
        municipality_key=municipality.key,
        title=_TITLE_DE[measure].format(place=rng.choice(_PLACES)),
        measure_type_key=measure,
        in_designated_area=in_area,
        designated_area_name=f"Gestaltungsraum {municipality.name} {rng.choice(['Mitte', 'Nord', 'Süd', 'West'])}"
        if in_area
        else None,
        owner_type=owner,
        total_cost_eur=total_cost,
        funding_rate=rate,
        idea_date=idea_date,
        disconnected_area_m2=area if mt["disconnects_runoff"] == "true" else 0.0,
        affected_surface_type=mt["surface_before"] or None,
        surface_change_m2=area,
        trees=trees,
        contact_name=f"{first} {last}",
        contact_email=f"{first.lower()}.{mail_last}@{municipality.key.replace('_', '-')}.example.de",
    )


def _plan_after_approval(rng, p: DemoProject, approvals_seq, payments_seq) -> None:
    """Construction, completion, amendments and payment instalments after a grant notice."""
    assert p.decision_date is not None and p.approved_eur is not None
    today = quarter_end(*LAST_QUARTER)
    p.construction_start = p.decision_date + dt.timedelta(days=rng.randint(30, 240))
    p.completion_date = p.construction_start + dt.timedelta(days=rng.randint(90, 700))
    if p.construction_start > today:
        p.construction_start = p.completion_date = None
    elif p.completion_date > today:
        p.completion_date = None
    if rng.random() < 0.15:  # cost increase approved by an amending notice
        when = p.decision_date + dt.timedelta(days=rng.randint(60, 400))
        if when <= today:
            p.amendments.append(Amendment(1, when, round(p.approved_eur * rng.uniform(1.03, 1.2), 2)))
    approved = p.current_approved_eur or 0.0
    if p.construction_start is None:
        return
    instalments = rng.randint(1, 4)
    end = p.completion_date or today
    share_paid = 1.0 if p.completion_date else rng.uniform(0.2, 0.8)
    remaining = round(approved * share_paid, 2)
    for k in range(instalments):
        amount = remaining if k == instalments - 1 else round(remaining * rng.uniform(0.2, 0.5), 2)
        remaining = round(remaining - amount, 2)
        day = _random_day(rng, p.construction_start, end)
        payments_seq[0] += 1
        p.payments.append(Payment(f"ZI-Z-{payments_seq[0]:06d}", day, amount))
    p.payments.sort(key=lambda x: x.paid_on)
    # Funds are called only within the amount approved at the time: a payment that would exceed the
    # initial notice moves after the amending notice that raised the amount.
    if p.amendments:
        amended_on = p.amendments[-1].notice_date
        paid = 0.0
        for payment in p.payments:
            paid = round(paid + payment.amount_eur, 2)
            if paid > p.approved_eur and payment.paid_on < amended_on:
                moved = max(amended_on, p.construction_start) + dt.timedelta(days=rng.randint(1, 30))
                payment.paid_on = min(moved, today)
        p.payments.sort(key=lambda x: x.paid_on)


def build_programme(scale: float = 0.05, seed: int = 7) -> DemoProgramme:
    rng = random.Random(seed)
    munis = list(municipalities())
    zi = [m for m in munis if m.is_zi_member]
    others = [m for m in munis if not m.is_zi_member]
    rng.shuffle(others)
    # Growth from the 16 founding members in 2020 to all 53 (at scale 1) by 2026.
    joining = others[: round(len(others) * min(1.0, scale))]
    active_from = {m.key: (2020, 1) for m in zi}
    for i, m in enumerate(joining):
        year = 2021 + (i * 6) // max(1, len(joining))
        active_from[m.key] = (min(year, 2026), rng.randint(1, 4) if year < 2026 else rng.randint(1, 3))
    by_key = {m.key: m for m in munis}
    seq: dict[tuple[str, int], int] = {}

    def make(m: Municipality, idea_date: dt.date) -> DemoProject:
        seq[(m.key, idea_date.year)] = seq.get((m.key, idea_date.year), 0) + 1
        return _new_project(rng, m, seq[(m.key, idea_date.year)], idea_date)

    projects: list[DemoProject] = []
    # --- 2020: exactly 91 ideas, 64 applications (5.2 Mio EUR), 60 approvals ------------------------
    ideas_2020 = [
        make(rng.choice(zi), _random_day(rng, dt.date(2020, 1, 6), dt.date(2020, 9, 15))) for _ in range(IDEAS_2020)
    ]
    ideas_2020.sort(key=lambda p: p.idea_date)
    applying = sorted(rng.sample(range(IDEAS_2020), APPLICATIONS_2020))
    amounts = _spread_to_total(rng, APPLICATIONS_2020, REQUESTED_EUR_2020, 15_000, 400_000)
    app_seq, appr_seq, pay_seq = [0], [0], [0]
    for idx, amount in zip(applying, amounts):
        p = ideas_2020[idx]
        p.total_cost_eur = round(amount / p.funding_rate, 2)
        # requested_eur is derived from cost and rate; fix rounding so the 2020 sum stays exact
        while p.requested_eur != amount:
            p.total_cost_eur = round(p.total_cost_eur + (amount - p.requested_eur) / p.funding_rate, 2)
            if abs(p.requested_eur - amount) < 0.02:
                p.funding_rate = round(amount / p.total_cost_eur, 6)
                p.total_cost_eur = round(amount / p.funding_rate, 2)
                if p.requested_eur != amount:
                    p.funding_rate, p.total_cost_eur = 1.0, amount
        p.application_date = _random_day(rng, p.idea_date + dt.timedelta(days=20), dt.date(2020, 11, 30))
        app_seq[0] += 1
        p.application_id = f"ZI-A-{app_seq[0]:05d}"
    applied = [ideas_2020[i] for i in applying]
    approved_2020 = set(rng.sample(range(APPLICATIONS_2020), APPROVALS_2020))
    for i, p in enumerate(applied):
        if i in approved_2020:
            p.decision_date = min(p.application_date + dt.timedelta(days=rng.randint(10, 60)), dt.date(2020, 12, 22))
            p.decision = "approved"
        elif i % 2 == 0:
            p.decision_date = dt.date(2021, 1, 1) + dt.timedelta(days=rng.randint(5, 80))
            p.decision = "approved"
        else:  # withdrawn by the municipality before a decision
            p.withdrawn_date = dt.date(2021, 1, 1) + dt.timedelta(days=rng.randint(5, 80))
    # Ideas of 2020 that did not apply in 2020: some apply later, some stay ideas or are dropped.
    for i, p in enumerate(ideas_2020):
        if i in applying:
            continue
        roll = rng.random()
        if roll < 0.6:
            p.application_date = _random_day(rng, dt.date(2021, 2, 1), dt.date(2022, 6, 30))
            app_seq[0] += 1
            p.application_id = f"ZI-A-{app_seq[0]:05d}"
            p.decision_date = p.application_date + dt.timedelta(days=rng.randint(20, 120))
            p.decision = "approved" if rng.random() < 0.93 else "rejected"
        elif roll < 0.8:
            p.withdrawn_date = _random_day(rng, dt.date(2021, 1, 15), dt.date(2022, 12, 31))
    projects.extend(ideas_2020)
    # --- 2021 onwards: growth with the programme ---------------------------------------------------
    n_later = round(LATER_PROJECTS_AT_SCALE_1 * scale)
    last_idea = quarter_end(*LAST_QUARTER)
    for _ in range(n_later):
        year = rng.choices(range(2021, 2027), weights=[8, 12, 16, 20, 22, 18])[0]
        start = dt.date(year, 1, 1)
        candidates = sorted(k for k, first in active_from.items() if first <= (year, 4))
        # Bigger cities run more projects: weight by population, so that no small town's measures
        # outgrow its paved area at large scales.
        m = by_key[rng.choices(candidates, weights=[by_key[k].population_2020 for k in candidates])[0]]
        first_day = max(start, dt.date(active_from[m.key][0], 3 * active_from[m.key][1] - 2, 1))
        p = make(m, _random_day(rng, first_day, min(dt.date(year, 12, 31), last_idea)))
        roll = rng.random()
        if roll < 0.7:
            p.application_date = p.idea_date + dt.timedelta(days=rng.randint(60, 400))
            if p.application_date <= last_idea:
                app_seq[0] += 1
                p.application_id = f"ZI-A-{app_seq[0]:05d}"
                p.decision_date = p.application_date + dt.timedelta(days=rng.randint(20, 150))
                if p.decision_date > last_idea:
                    p.decision_date = None
                else:
                    p.decision = "approved" if rng.random() < 0.92 else "rejected"
            else:
                p.application_date = None
        elif roll < 0.8:
            p.withdrawn_date = p.idea_date + dt.timedelta(days=rng.randint(90, 500))
            if p.withdrawn_date > last_idea:
                p.withdrawn_date = None
        projects.append(p)
    # Grant notices, construction and payments for every approval, in decision order.
    for p in sorted((p for p in projects if p.decision == "approved"), key=lambda p: (p.decision_date, p.project_id)):
        appr_seq[0] += 1
        p.approval_id = f"ZI-B-{appr_seq[0]:05d}"
        p.approved_eur = round(p.requested_eur * (1.0 if rng.random() < 0.85 else rng.uniform(0.85, 0.99)), 2)
        _plan_after_approval(rng, p, appr_seq, pay_seq)
    projects.sort(key=lambda p: (p.idea_date, p.project_id))
    return DemoProgramme(scale=scale, seed=seed, projects=projects, active_from=active_from)
