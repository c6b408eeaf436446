"""The scenario schema: every section, field, unit and allowed range.

Strict by design: unknown keys, NaN/inf, booleans or strings where numbers
belong and out-of-range values are all errors. A numeric model parameter
(declared with :func:`param`) may be a number or a distribution drawn once per
path (see :mod:`simulator.distributions`). Counts (therapists, caseload limit,
months of tracking) and dates are fixed values.
"""
from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from .distributions import Distribution, Fixed

DAYS_PER_YEAR = 365.25
MAX_SEED = 2**63 - 1   # seeds are 64-bit signed integers wherever they are stored
DAYS_PER_MONTH = DAYS_PER_YEAR / 12.0  # 30.4375: months are average months throughout
# Bounds that keep every figure finite and every path's work finite: a trillion pounds,
# and a bond's service and payments within a lifetime.
MONEY_MAX = 1e12
SERVICE_YEARS_MAX = 50
PAYMENT_YEARS_MAX = 60


# --------------------------------------------------------------------------- params
def _coerce_param(value: Any) -> Any:
    """A plain number becomes a fixed distribution; a mapping is left to the union."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number or a distribution, got boolean {value!r}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise ValueError(f"expected a finite number, got {value!r}")
        return Fixed(value=float(value))
    if isinstance(value, (dict, Fixed)) or hasattr(value, "dist"):
        return value
    raise ValueError(
        f"expected a number or a distribution such as "
        f"{{dist: uniform, low: 0.5, high: 1.0}}, got {type(value).__name__} {value!r}")


def _range_check(ge=None, gt=None, le=None, lt=None):
    def check(d):
        lo, hi = d.support()
        problems = []
        if ge is not None and lo < ge:
            problems.append(f">= {ge}")
        if gt is not None and lo <= gt:
            problems.append(f"> {gt}")
        if le is not None and hi > le:
            problems.append(f"<= {le}")
        if lt is not None and hi >= lt:
            problems.append(f"< {lt}")
        if problems:
            what = f"value {lo:g}" if d.is_fixed else f"distribution support [{lo:g}, {hi:g}]"
            raise ValueError(f"{what} out of range: must be {' and '.join(problems)}")
        return d
    return check


def param(description: str, unit: str, *, default: Any = ..., ge=None, gt=None,
          le=None, lt=None):
    """A model parameter: a number or a distribution, with a unit and a range."""
    bounds = {k: v for k, v in dict(ge=ge, gt=gt, le=le, lt=lt).items() if v is not None}
    if default is not ... and default is not None:
        default = Fixed(value=float(default))
    return Annotated[
        Distribution,
        BeforeValidator(_coerce_param, json_schema_input_type=float | Distribution),
        AfterValidator(_range_check(**bounds)),
        Field(default=default, description=f"{description} [{unit}]",
              json_schema_extra={"unit": unit, **{f"x-{k}": v for k, v in bounds.items()}}),
    ]


def _iso_date(value: Any) -> Any:
    """A quoted date ("2013-04-01") is the date it spells: YAML reads an unquoted one as a
    date and a quoted one as text, and editors following the JSON Schema quote dates.
    Anything else is left to the strict check (a number is not a date)."""
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"{value!r} is not a calendar date") from None
    return value


# a date field: a YAML date, or the same date quoted
Date = Annotated[dt.date, BeforeValidator(_iso_date)]


def _desc(description: str, unit: str, **kw):
    return Field(description=f"{description} [{unit}]", json_schema_extra={"unit": unit}, **kw)


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


# --------------------------------------------------------------------------- sections
class Calendar(Section):
    contract_start: Date = _desc("Contract (bond) start; day 0 of the simulation clock", "date")
    referrals_end: Date = _desc("Last day on which a referral can arrive", "date")
    service_end: Date = _desc(
        "End of service delivery: no treatment starts after it; therapists leave "
        "and are recruited only before it", "date")
    start_delay_months: param("Delay added to every team's start date (a stress lever)",
                              "months", default=0.0, ge=0, le=60)
    tracking_months: int = _desc("Tracking window per young person", "months",
                                 default=30, ge=3, le=120)
    tracking_from: Literal["referral", "treatment_start", "treatment_end"] = Field(
        default="referral",
        description="When each young person's tracking window opens [event]")


class Referrals(Section):
    per_team_per_month: param("Mean referrals per team per month at full volume",
                              "referrals/team/month", gt=0, le=1000)
    dispersion: param("Negative binomial size k of monthly referrals "
                      "(variance = mean + mean^2/k); null for Poisson",
                      "1", gt=0, le=1e6) | None = None
    ramp_up_months: param("Months from a team's start until referrals reach full volume",
                          "months", default=0.0, ge=0, le=120)
    ramp_start_share: param("Referral volume in a team's first month as a share of full volume",
                            "share", default=1.0, ge=0, le=1)
    annual_trend: param("Change in referral volume per year after a team starts",
                        "fraction/year", default=0.0, gt=-1, le=10)
    acceptance_share: param("Share of referrals accepted by screening", "share", ge=0, le=1)
    screening_days: param("Days from referral to the screening decision", "days",
                          default=0.0, ge=0, le=365)
    rejection_reasons: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]+$", max_length=60)],
                            Annotated[float, Field(ge=0, le=1)]] = _desc(
        "Reasons referrals are turned away, as shares of rejected referrals "
        "(summing to 1 within 0.02)", "share", default_factory=dict)

    @model_validator(mode="after")
    def _reasons_sum_to_one(self):
        total = sum(self.rejection_reasons.values())
        if self.rejection_reasons and abs(total - 1.0) > 0.02:
            raise ValueError(f"referrals.rejection_reasons shares sum to {total:g}, expected 1")
        return self


class Team(Section):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_\-]+$", description="Team name")
    start_date: Date = _desc("Date the team starts taking cases", "date")
    therapists: int = _desc("Therapist posts in the team", "therapists", ge=1, le=100)
    referral_weight: float = _desc("This team's referral volume relative to "
                                   "referrals.per_team_per_month", "ratio",
                                   default=1.0, gt=0, le=100)


class Workforce(Section):
    teams: list[Team] = Field(min_length=1, max_length=32, description="Delivery teams")
    caseload_limit: int = _desc("Most families one therapist carries at a time",
                                "families/therapist", ge=1, le=50)
    max_wait_days: param("Longest an accepted referral waits for a place before it is lost",
                         "days", ge=0, le=3650)
    leaving_rate_per_year: param("Therapist leaving hazard", "leavers/therapist-year",
                                 ge=0, le=20)
    vacancy_mean_days: param("Mean time to recruit and train a replacement therapist",
                             "days", ge=0, le=3650)
    vacancy_shape: param("Gamma shape of the vacancy length (1 = exponential)", "1",
                         default=2.0, gt=0, le=1000)
    therapists_in_waiting: int = _desc(
        "Trained therapists held in reserve who fill a vacancy at once (the reserve "
        "is then re-recruited)", "therapists", default=0, ge=0, le=20)

    @model_validator(mode="after")
    def _unique_team_names(self):
        names = [t.name for t in self.teams]
        if len(set(names)) != len(names):
            raise ValueError(f"workforce.teams names must be unique, got {names}")
        return self


class Treatment(Section):
    median_days: param("Median treatment length", "days", gt=0, le=3650)
    short_threshold_days: param("Threshold for 'short' treatments", "days",
                                default=90.0, gt=0, le=3650)
    share_under_threshold: param("Share of treatments shorter than short_threshold_days "
                                 "(with median_days, fixes the lognormal spread)", "share",
                                 gt=0, lt=1)
    min_days: float = _desc("Shortest treatment (lognormal truncated here)", "days",
                            default=1.0, gt=0)
    max_days: float = _desc("Longest treatment (lognormal truncated here)", "days",
                            default=730.0, gt=0, le=3650)
    noncompletion_share: param("Share of treatments not completed", "share",
                               default=0.0, ge=0, le=1)
    hazard_ratio_during: param("Care-entry hazard ratio while in treatment", "ratio",
                               gt=0, le=100)
    hazard_ratio_after: param("Care-entry hazard ratio after treatment ends", "ratio",
                              gt=0, le=100)
    effect_half_life_days: param(
        "Half-life of the log hazard ratio after treatment (null: no waning)", "days",
        gt=0, le=1e5) | None = None
    disrupted_effect_retention: param(
        "Share of the log hazard ratio kept when the therapist changes mid-treatment",
        "share", default=1.0, ge=0, le=1)
    noncompleted_effect_retention: param(
        "Share of the log hazard ratio kept when treatment is not completed", "share",
        default=1.0, ge=0, le=1)

    @model_validator(mode="after")
    def _lengths(self):
        if not self.min_days < self.max_days:
            raise ValueError("treatment.min_days must be below treatment.max_days")
        self._check_lognormal_spread()
        return self

    def _check_lognormal_spread(self) -> None:
        """The median, threshold and share fix the lognormal's spread only when the
        median is above the threshold with a share below 0.5, or the reverse. Checked
        on the supports, as the ranges are: a distribution that can cross over fails
        some path of a large enough run, so it is refused here, not mid-run."""
        m0, m1 = self.median_days.support()
        t0, t1 = self.short_threshold_days.support()
        s0, s1 = self.share_under_threshold.support()
        if (m0 > t1 and s1 < 0.5) or (m1 < t0 and s0 > 0.5):
            return
        rule = ("a median above short_threshold_days needs share_under_threshold below 0.5, "
                "and a median below it a share above 0.5")
        if self.median_days.is_fixed and self.short_threshold_days.is_fixed \
                and self.share_under_threshold.is_fixed:
            raise ValueError(
                f"treatment.median_days={m0:g}, short_threshold_days={t0:g} and "
                f"share_under_threshold={s0:g} do not define a lognormal: {rule}")
        raise ValueError(
            f"treatment.median_days in [{m0:g}, {m1:g}], short_threshold_days in "
            f"[{t0:g}, {t1:g}] and share_under_threshold in [{s0:g}, {s1:g}] allow paths on "
            f"which they do not define a lognormal ({rule}): bound the distributions so "
            f"that the median stays on one side of the threshold")


class YoungPeople(Section):
    age_mean_years: param("Mean age at referral (before truncation)", "years", ge=0, le=18)
    age_sd_years: param("Standard deviation of age at referral (before truncation)",
                        "years", gt=0, le=10)
    age_min_years: float = _desc("Youngest age at referral", "years", default=11.0, ge=0, lt=18)
    age_max_years: float = _desc("Age at referral is below this", "years", default=18.0,
                                 gt=0, le=18)
    female_share: param("Share of young people who are female", "share", default=0.5,
                        ge=0, le=1)
    prior_care_share: param("Share with a period of care in the two years before referral",
                            "share", default=0.0, ge=0, le=1)

    @model_validator(mode="after")
    def _ages(self):
        if not self.age_min_years < self.age_max_years:
            raise ValueError("young_people.age_min_years must be below "
                             "young_people.age_max_years")
        return self


class Care(Section):
    entry_rate_per_year: param("Care-entry hazard of an untreated young person at home, "
                               "at the reference age, with no prior care, in the "
                               "historical baseline cohort", "entries/child-year", ge=0, le=100)
    reference_age_years: float = _desc("Age at which entry_rate_per_year applies", "years",
                                       default=14.0, ge=0, le=18)
    age_hazard_ratio_per_year: param("Hazard ratio per year of age above the reference age "
                                     "(applied by whole year of age)", "ratio/year",
                                     default=1.0, gt=0, le=100)
    prior_care_hazard_ratio: param("Hazard ratio for a young person with prior care", "ratio",
                                   default=1.0, gt=0, le=100)
    exit_rate_per_year: param("Hazard of leaving care (mean spell = 1/rate)",
                              "exits/child-year in care", default=0.0, ge=0, le=365)
    reentry_hazard_ratio: param("Hazard ratio for entering care again after a spell",
                                "ratio", default=1.0, gt=0, le=100)
    leaves_care_at_age: float = _desc("Age at which care and tracking end", "years",
                                      default=18.0, gt=0, le=25)


class Counterfactual(Section):
    hazard_multiplier: param("Today's untreated care-entry hazard relative to the historical "
                             "baseline cohort (baseline drift; 1 = no drift)", "ratio",
                             default=1.0, gt=0, le=100)
    annual_hazard_trend: param("Further change per year since contract start in today's "
                               "untreated hazard", "fraction/year", default=0.0, gt=-1, le=10)


class OutcomeEvent(Section):
    """A payment per young person for a binary outcome at a checkpoint after referral."""

    name: str = Field(pattern=r"^[A-Za-z0-9_\-]+$", description="Event name")
    months_after_referral: float = _desc("Checkpoint after referral", "months", gt=0, le=120)
    condition: Literal["not_in_care"] = Field(
        default="not_in_care",
        description="What must hold at the checkpoint (treated path) [event]")
    price: float = _desc("Payment per young person meeting the condition", "GBP", ge=0,
                         le=1e7)


class Contract(Section):
    baseline_care_proportion: (Annotated[float, Field(ge=0, le=1)]
                               | Annotated[list[Annotated[float, Field(ge=0, le=1)]],
                                           Field(min_length=1, max_length=40)]) = _desc(
        "Historical baseline care proportion (care days / child days): one value, or one "
        "per quarter since tracking start", "share")
    price_per_care_day_saved: float = _desc("Outcome payment per care day saved against the "
                                            "baseline", "GBP/day", ge=0, le=1e5)
    payment_lag_quarters: int = _desc("Quarters from the end of an assessed quarter to its "
                                      "payment", "quarters", default=1, ge=0, le=20)
    clawback: bool = Field(default=False, description=(
        "Cumulative true-up may claw back earlier overpayment (negative payments) [flag]"))
    cap: float | None = _desc("Cap on total outcome payments (null: no cap)", "GBP",
                              default=None, ge=0, le=MONEY_MAX)
    last_payment_date: Date | None = _desc(
        "No outcome payment is made after this date (null: no limit)", "date", default=None)
    outcome_events: list[OutcomeEvent] = Field(default_factory=list, max_length=4,
                                               description="Binary outcome payments")
    care_cost_per_day: param("Commissioner's cost of a day in care (for care costs avoided)",
                             "GBP/day", default=0.0, ge=0, le=1e5)


class Costs(Section):
    per_team_per_quarter: param("Delivery cost of one team for a full quarter of service "
                                "(pro rata by days active)", "GBP/team/quarter", default=0.0,
                                ge=0, le=1e8)
    per_case_started: param("Cost per case started", "GBP/case", default=0.0, ge=0, le=1e7)
    flexible_fund_per_family: param("Flexible fund spent per family treated", "GBP/case",
                                    default=0.0, ge=0, le=1e7)
    set_up: param("One-off set-up cost in the contract's first quarter", "GBP", default=0.0,
                  ge=0, le=1e9)
    licence_per_team_per_year: param("Programme licence fee per team (pro rata by days active)",
                                     "GBP/team/year", default=0.0, ge=0, le=1e8)
    management_fee_per_quarter: param("SPV management fee, every quarter until the SPV "
                                      "winds up (the later of the last payment and the "
                                      "service end)", "GBP/quarter", default=0.0, ge=0, le=1e8)
    annual_inflation: param("Cost inflation from the contract start", "fraction/year",
                            default=0.0, gt=-1, le=1)


class Drawdown(Section):
    """One dated draw of the drawdown schedule: an amount, or a share of the commitment."""

    date: Date = _desc("When the capital is drawn (in that calendar quarter)", "date")
    amount: float | None = _desc("Capital drawn", "GBP", default=None, ge=0, le=MONEY_MAX)
    share: float | None = _desc("Capital drawn, as a share of the commitment", "share",
                                default=None, ge=0, le=1)

    @model_validator(mode="after")
    def _one_of(self):
        if (self.amount is None) == (self.share is None):
            raise ValueError("give a draw either an amount or a share, not both or neither")
        return self


class Finance(Section):
    commitment: float = _desc("Investors' committed capital", "GBP", ge=1, le=MONEY_MAX)
    reserve: float = _desc("Cash the SPV keeps before wind-up: capital is called when cash "
                           "would fall below it, only cash above it is distributed, and it is "
                           "released at wind-up", "GBP", default=0.0, ge=0, le=MONEY_MAX)
    capital_call: Literal["exact", "tranche", "schedule"] = Field(
        default="exact", description="Draw exactly the shortfall, whole tranches, or on the "
        "drawdown schedule (and any shortfall beyond it early) [rule]")
    tranche_size: float | None = _desc("Tranche size when capital_call is 'tranche'", "GBP",
                                       default=None, gt=0, le=MONEY_MAX)
    drawdown_schedule: list[Drawdown] | None = Field(
        default=None, max_length=400,
        description="Dated draws when capital_call is 'schedule'")
    distribution_start: Date | None = _desc(
        "Surplus above the reserve is distributed each quarter from this date; before it "
        "payments are recycled (null: only at the end)", "date", default=None)
    investor_share_of_surplus: float = _desc(
        "After investors' drawn capital is returned, their share of further distributions "
        "(the rest goes to the provider)", "share", default=1.0, ge=0, le=1)
    discount_rate_per_year: float = _desc("Discount rate for present values", "fraction/year",
                                          default=0.035, ge=0, le=1)

    @model_validator(mode="after")
    def _call_rule(self):
        if self.capital_call == "tranche" and self.tranche_size is None:
            raise ValueError("finance.tranche_size is required when finance.capital_call is "
                             "'tranche'")
        scheduled = self.capital_call == "schedule"
        if scheduled != bool(self.drawdown_schedule):
            raise ValueError("finance.drawdown_schedule is required when finance.capital_call "
                             "is 'schedule', and only then")
        if scheduled and sum(self.scheduled_amounts()) > self.commitment * (1 + 1e-9):
            raise ValueError(f"finance.drawdown_schedule draws "
                             f"{sum(self.scheduled_amounts()):,.2f} in all, more than the "
                             f"commitment of {self.commitment:,.2f}")
        return self

    def scheduled_amounts(self) -> list[float]:
        """Each scheduled draw in pounds (shares taken of the commitment)."""
        return [d.amount if d.amount is not None else d.share * self.commitment
                for d in self.drawdown_schedule or []]


class Simulation(Section):
    paths: int = _desc("Monte Carlo paths", "paths", default=2000, ge=1, le=100_000_000)
    seed: int = _desc("Master random seed", "1", default=20121101, ge=0, le=MAX_SEED)
    chunk_paths: int = _desc("Paths simulated per chunk (memory only: results do not "
                             "depend on it)", "paths", default=4096, ge=1, le=10_000_000)


class Scenario(Section):
    name: str = Field(pattern=r"^[A-Za-z0-9_\-]+$", max_length=100,
                      description="Scenario name (used for the output folder)")
    description: str = Field(default="", description="What this scenario is")
    calendar: Calendar
    referrals: Referrals
    workforce: Workforce
    treatment: Treatment
    young_people: YoungPeople
    care: Care
    counterfactual: Counterfactual = Field(default_factory=Counterfactual)
    contract: Contract | None = None
    costs: Costs = Field(default_factory=Costs)
    finance: Finance | None = None
    simulation: Simulation = Field(default_factory=Simulation)

    @model_validator(mode="after")
    def _dates_in_order(self):
        c = self.calendar
        if not c.contract_start <= c.referrals_end <= c.service_end:
            raise ValueError("need calendar.contract_start <= calendar.referrals_end <= "
                             "calendar.service_end")
        for i, t in enumerate(self.workforce.teams):
            if not c.contract_start <= t.start_date <= c.referrals_end:
                raise ValueError(f"workforce.teams[{i}].start_date (team {t.name}) must lie "
                                 f"between calendar.contract_start and calendar.referrals_end")
        q = self.contract.baseline_care_proportion if self.contract else None
        n_q = -(-c.tracking_months // 3)
        if isinstance(q, list) and len(q) != n_q:
            raise ValueError(f"contract.baseline_care_proportion lists {len(q)} quarters; "
                             f"tracking_months={c.tracking_months} gives {n_q}")
        if (c.service_end - c.contract_start).days > SERVICE_YEARS_MAX * DAYS_PER_YEAR:
            raise ValueError(f"calendar.service_end ({c.service_end}) is more than "
                             f"{SERVICE_YEARS_MAX} years after calendar.contract_start")
        last = self.contract.last_payment_date if self.contract else None
        if last is not None and (last - c.contract_start).days > PAYMENT_YEARS_MAX * DAYS_PER_YEAR:
            raise ValueError(f"contract.last_payment_date ({last}) is more than "
                             f"{PAYMENT_YEARS_MAX} years after calendar.contract_start")
        if last is not None and last < c.contract_start:
            raise ValueError("contract.last_payment_date is before calendar.contract_start: "
                             "no outcome payment could be made")
        if self.finance is not None and self.contract is None:
            raise ValueError("a finance section needs a contract section")
        for i, d in enumerate(self.finance.drawdown_schedule or [] if self.finance else []):
            if not c.contract_start <= d.date <= c.service_end:
                raise ValueError(f"finance.drawdown_schedule[{i}].date ({d.date}) must lie "
                                 f"between calendar.contract_start and calendar.service_end: "
                                 f"capital is drawn for the service, and never at wind-up")
        return self


# --------------------------------------------------------------------------- helpers
def iter_params(model: BaseModel, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted name, distribution) for every numeric model parameter, including unset optionals."""
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        dotted = f"{prefix}{name}"
        if isinstance(value, BaseModel) and not hasattr(value, "dist"):
            yield from iter_params(value, dotted + ".")
        elif hasattr(value, "dist"):
            yield dotted, value
        elif value is None and is_param_field(field):
            yield dotted, None


def is_param_field(field) -> bool:
    """Whether a model field takes a parameter (a distribution or Fixed value)."""
    return "Fixed" in repr(field.annotation)


def json_schema() -> dict:
    """The JSON Schema of a scenario file as ``sibsim validate`` reads it: a whole
    scenario, or a file that ``extends`` another and overrides some of its keys (see
    :mod:`simulator.compose`); either may list ``stresses`` and ``sweeps``. What only
    the whole chain can tell (the overrides' values, the stresses' keys) is left to
    ``sibsim validate``."""
    whole = Scenario.model_json_schema()
    defs = whole.pop("$defs")
    variants = {
        "stresses": {"type": "object", "description": (
            "Named variants of this scenario: each maps dotted keys (or sections) to new "
            "values or operations such as {scale: 0.7}"),
            "additionalProperties": {"type": "object"}},
        "sweeps": {"type": "object", "description": (
            "Named grids: each maps one or two dotted keys to a list of values"),
            "additionalProperties": {"type": "object", "additionalProperties": {
                "type": "array", "minItems": 1}}},
    }
    whole["properties"].update(variants)
    sections = [k for k in Scenario.model_fields if k not in ("name", "description")]
    extending = {
        "title": "Scenario extending another",
        "type": "object",
        "required": ["extends"],
        "properties": {
            "extends": {"type": "string", "description": "The base scenario file, relative "
                                                         "to this one"},
            "name": whole["properties"]["name"],
            "description": whole["properties"]["description"],
            **{k: {"type": "object", "description": f"Overrides of the base's {k} keys"}
               for k in sections},
            **variants,
        },
        # an override of one key, e.g. referrals.per_team_per_month or
        # contract.outcome_events[0].price
        "patternProperties": {f"^({'|'.join(sections)})[.\\[]": {}},
        "additionalProperties": False,
    }
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "sibsim scenario", "anyOf": [whole, extending], "$defs": defs}
