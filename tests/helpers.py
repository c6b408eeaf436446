import copy
import datetime as dt
from pathlib import Path

from simulator.schema import Scenario

ROOT = Path(__file__).resolve().parents[1]
ESSEX = ROOT / "scenarios" / "essex_mst.yaml"


CONTRACT_START = dt.date(2020, 1, 1)


def small_scenario_dict() -> dict:
    """A small, fast scenario with every mechanism switched on (tests override parts)."""
    return {
        "name": "small",
        "calendar": {"contract_start": CONTRACT_START, "referrals_end": dt.date(2021, 12, 31),
                     "service_end": dt.date(2022, 6, 30), "tracking_months": 30},
        "referrals": {"per_team_per_month": 4.0, "dispersion": 5.0, "ramp_up_months": 3,
                      "ramp_start_share": 0.5, "acceptance_share": 0.7, "screening_days": 7,
                      "rejection_reasons": {"a": 0.25, "b": 0.75}},
        "workforce": {"teams": [{"name": "t1", "start_date": dt.date(2020, 2, 1), "therapists": 2},
                                {"name": "t2", "start_date": dt.date(2020, 5, 1), "therapists": 3}],
                      "caseload_limit": 4, "max_wait_days": 30, "leaving_rate_per_year": 0.4,
                      "vacancy_mean_days": 60, "therapists_in_waiting": 1},
        "treatment": {"median_days": 142, "share_under_threshold": 0.14, "min_days": 10,
                      "max_days": 361, "noncompletion_share": 0.15, "hazard_ratio_during": 0.3,
                      "hazard_ratio_after": 0.4, "disrupted_effect_retention": 0.5},
        "young_people": {"age_mean_years": 14.2, "age_sd_years": 1.6, "prior_care_share": 0.1},
        "care": {"entry_rate_per_year": 0.8, "prior_care_hazard_ratio": 3.0,
                 "exit_rate_per_year": 0.5, "reentry_hazard_ratio": 1.5},
        "simulation": {"paths": 200, "seed": 7},
    }


def with_money(d: dict | None = None) -> dict:
    """The small scenario with an outcomes contract, costs and SPV finance."""
    return deep_update(d or small_scenario_dict(), {
        "contract": {"baseline_care_proportion": 0.55, "price_per_care_day_saved": 60.0,
                     "payment_lag_quarters": 1, "cap": 2_500_000.0, "care_cost_per_day": 250.0},
        "costs": {"per_team_per_quarter": 60_000.0, "flexible_fund_per_family": 500.0,
                  "set_up": 50_000.0, "licence_per_team_per_year": 8_000.0,
                  "management_fee_per_quarter": 10_000.0, "annual_inflation": 0.02},
        "finance": {"commitment": 1_500_000.0, "reserve": 50_000.0},
    })


def deep_update(base: dict, changes: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in changes.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_update(out[k], v)
        else:
            out[k] = v
    return out


def make_scenario(changes: dict | None = None, base: dict | None = None) -> Scenario:
    return Scenario.model_validate(deep_update(base or small_scenario_dict(), changes or {}))


