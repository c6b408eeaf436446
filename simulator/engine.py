"""Python around the kernels: scenario -> flat arrays -> chunks of paths -> results.

This is the only module that calls :mod:`simulator.kernels`. It validates what
the schema cannot (per-path combinations of drawn parameters, and whether a run's
outputs fit in the memory available), lays scenarios
out as the flat arrays the kernels read, draws uncertain parameters once per
path (inverse CDF of a per-parameter, per-path uniform: common random numbers),
and gathers chunk outputs into a :class:`SimulationResult`.
"""
from __future__ import annotations

import datetime as dt
import functools
import math
import mmap
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from . import cluster, invariants, kernels, memory
from . import layout as L
from .kernels import cache, rng
from .kernels.binning import day_quarters
from .kernels.chunk import conservation_totals, run_chunk
from .schema import DAYS_PER_MONTH, DAYS_PER_YEAR, Scenario, iter_params

if TYPE_CHECKING:
    import pandas as pd

# Scenario key -> column of the per-path parameter matrix. Optional keys left
# null use the sentinel 0 (Poisson referrals; no waning of the effect).
PARAM_COLUMNS: dict[str, int] = {
    "calendar.start_delay_months": L.P_START_DELAY_MONTHS,
    "referrals.per_team_per_month": L.P_REFERRAL_RATE,
    "referrals.dispersion": L.P_REFERRAL_DISPERSION,
    "referrals.ramp_up_months": L.P_RAMP_UP_MONTHS,
    "referrals.ramp_start_share": L.P_RAMP_START_SHARE,
    "referrals.annual_trend": L.P_REFERRAL_TREND,
    "referrals.acceptance_share": L.P_ACCEPTANCE_SHARE,
    "referrals.screening_days": L.P_SCREENING_DAYS,
    "workforce.max_wait_days": L.P_MAX_WAIT_DAYS,
    "workforce.leaving_rate_per_year": L.P_LEAVING_RATE,
    "workforce.vacancy_mean_days": L.P_VACANCY_MEAN_DAYS,
    "workforce.vacancy_shape": L.P_VACANCY_SHAPE,
    "treatment.median_days": L.P_TREATMENT_MEDIAN_DAYS,
    "treatment.short_threshold_days": L.P_SHORT_THRESHOLD_DAYS,
    "treatment.share_under_threshold": L.P_SHARE_UNDER_THRESHOLD,
    "treatment.noncompletion_share": L.P_NONCOMPLETION_SHARE,
    "treatment.hazard_ratio_during": L.P_HR_DURING,
    "treatment.hazard_ratio_after": L.P_HR_AFTER,
    "treatment.effect_half_life_days": L.P_EFFECT_HALF_LIFE_DAYS,
    "treatment.disrupted_effect_retention": L.P_DISRUPTED_RETENTION,
    "treatment.noncompleted_effect_retention": L.P_NONCOMPLETED_RETENTION,
    "young_people.age_mean_years": L.P_AGE_MEAN,
    "young_people.age_sd_years": L.P_AGE_SD,
    "young_people.female_share": L.P_FEMALE_SHARE,
    "young_people.prior_care_share": L.P_PRIOR_CARE_SHARE,
    "care.entry_rate_per_year": L.P_ENTRY_RATE,
    "care.age_hazard_ratio_per_year": L.P_AGE_HR,
    "care.prior_care_hazard_ratio": L.P_PRIOR_CARE_HR,
    "care.exit_rate_per_year": L.P_EXIT_RATE,
    "care.reentry_hazard_ratio": L.P_REENTRY_HR,
    "counterfactual.hazard_multiplier": L.P_DRIFT_MULTIPLIER,
    "counterfactual.annual_hazard_trend": L.P_DRIFT_TREND,
    "contract.care_cost_per_day": L.P_CARE_COST_PER_DAY,
    "costs.per_team_per_quarter": L.P_COST_TEAM_QUARTER,
    "costs.per_case_started": L.P_COST_PER_CASE,
    "costs.flexible_fund_per_family": L.P_COST_FLEX_FUND,
    "costs.set_up": L.P_COST_SET_UP,
    "costs.licence_per_team_per_year": L.P_COST_LICENCE_YEAR,
    "costs.management_fee_per_quarter": L.P_COST_MANAGEMENT_QUARTER,
    "costs.annual_inflation": L.P_COST_INFLATION,
}


OUTPUT_COLUMNS = L.OUTPUT_COLUMNS
QUARTER_SINCE_TRACKING_COLUMNS = L.QUARTER_SINCE_TRACKING_COLUMNS
CALENDAR_QUARTER_COLUMNS = L.CALENDAR_QUARTER_COLUMNS


class ParameterError(ValueError):
    """A combination of drawn parameter values the model cannot use."""


class NotEnoughMemory(ParameterError):
    """More paths than this machine's memory holds in one run (refused before any
    allocating or simulating; the command line reports it like a bad draw)."""


# The most referrals a path may expect (Essex: about 610). Each takes a few hundred bytes
# of a worker's work arrays and some simulating; a scenario past this (a steep referral
# trend over a long calendar, say) would run for hours or run out of memory.
MAX_REFERRALS_PER_PATH = 1_000_000


def referral_bound(params: np.ndarray, lay: Layout) -> tuple[float, float, float, int]:
    """An upper bound on the referrals any path of ``params`` expects: the highest drawn
    volume and trend, every team at full volume from its start to the end of referrals,
    no start delay. Returns (bound, volume, trend, longest team's months)."""
    rate = float(params[:, L.P_REFERRAL_RATE].max())
    trend = float(params[:, L.P_REFERRAL_TREND].max())
    growth = (1.0 + trend) ** (DAYS_PER_MONTH / DAYS_PER_YEAR)   # a month's
    bound = 0.0
    longest = 0
    for start, weight in zip(lay.team_start, lay.team_weight):
        months = max(0, math.ceil((lay.config[L.C_REFERRALS_END] - start) / DAYS_PER_MONTH))
        longest = max(longest, months)
        with np.errstate(over="ignore"):
            total = months if growth == 1.0 else (growth ** months - 1.0) / (growth - 1.0)
        bound += rate * weight * total
    return bound, rate, trend, longest


def _check_referral_volume(params: np.ndarray, lay: Layout) -> None:
    """Raise ParameterError if some path may expect more than MAX_REFERRALS_PER_PATH."""
    bound, rate, trend, longest = referral_bound(params, lay)
    if not bound <= MAX_REFERRALS_PER_PATH:   # (also when it overflowed)
        raise ParameterError(
            f"referrals: a path may expect about {bound:,.3g} referrals (per_team_per_month "
            f"up to {rate:g}, annual_trend up to {trend:g}, over {longest} months of "
            f"referrals), more than the {MAX_REFERRALS_PER_PATH:,} a path the engine takes "
            f"(Essex: about 610)")


# The most staffing work a path may expect: therapist leavings (each a vacancy and a
# fill) times the posts each one's cases are shared among (Essex: about 14 leavings
# among 8 posts). The capacity model's work grows with both; past this a path takes
# seconds, and a run hours.
MAX_STAFF_WORK_PER_PATH = 2_500_000


def staffing_bound(params: np.ndarray, lay: Layout) -> tuple[float, float, int]:
    """An upper bound on a path's expected therapist leavings (the highest drawn leaving
    rate, every post staffed from its team's start to the service end). Returns
    (leavings, rate, posts)."""
    rate = float(params[:, L.P_LEAVING_RATE].max())
    years = np.maximum(lay.config[L.C_SERVICE_END] - lay.team_start, 0.0) / DAYS_PER_YEAR
    return rate * float(np.sum(lay.team_size * years)), rate, int(lay.team_size.sum())


def _check_staffing(params: np.ndarray, lay: Layout) -> None:
    """Raise ParameterError if some path's staffing would take too long to simulate."""
    leavings, rate, posts = staffing_bound(params, lay)
    if not leavings * posts <= MAX_STAFF_WORK_PER_PATH:
        raise ParameterError(
            f"workforce: a path may expect about {leavings:,.3g} therapist leavings among "
            f"{posts:,} posts (leaving_rate_per_year up to {rate:g}), more than the engine "
            f"simulates in reasonable time (leavings x posts up to "
            f"{MAX_STAFF_WORK_PER_PATH:,}; Essex: about 14 among 8)")


# A run's peak memory per byte of its output arrays: the frame of paths and the
# quarterly tables are made from them after the kernels. Essex: 9.2 kB a path at the
# peak for 7.6 kB of outputs (maximum resident size at 50,000 and 200,000 paths).
PEAK_PER_OUTPUT_BYTE = 1.25


@dataclass
class Layout:
    """A scenario as the flat arrays the kernels read (the same for every path)."""

    config: np.ndarray
    team_start: np.ndarray
    team_size: np.ndarray
    team_weight: np.ndarray
    reason_cdf: np.ndarray
    reason_names: list[str]
    calendar_edges: np.ndarray
    calendar_quarters: list[dt.date]
    n_tracking_quarters: int
    baseline_by_quarter: np.ndarray
    event_months: np.ndarray
    event_prices: np.ndarray
    event_names: list[str]
    call_schedule: np.ndarray       # capital the drawdown schedule draws, by calendar quarter


def scenario_arrays(lay: Layout) -> L.ScenarioArrays:
    """The arrays the kernels read of a scenario laid out."""
    return L.ScenarioArrays(lay.config, lay.team_start, lay.team_size, lay.team_weight,
                            lay.reason_cdf, lay.calendar_edges, day_quarters(lay.calendar_edges),
                            lay.baseline_by_quarter, lay.event_months, lay.event_prices,
                            lay.call_schedule)


def _days(d: dt.date, origin: dt.date) -> float:
    return float((d - origin).days)


def quarter_starts(first: dt.date, last: dt.date) -> list[dt.date]:
    """Calendar quarter start dates (Jan, Apr, Jul, Oct) covering [first, last]."""
    q = dt.date(first.year, 3 * ((first.month - 1) // 3) + 1, 1)
    out = [q]
    while out[-1] <= last:
        y, m = out[-1].year, out[-1].month + 3
        out.append(dt.date(y + (m - 1) // 12, (m - 1) % 12 + 1, 1))
    return out


def layout(scenario: Scenario) -> Layout:
    cal = scenario.calendar
    origin = cal.contract_start
    cfg = np.zeros(L.N_CONFIG)
    cfg[L.C_REFERRALS_END] = _days(cal.referrals_end, origin) + 1.0  # the whole last day
    cfg[L.C_SERVICE_END] = _days(cal.service_end, origin) + 1.0
    cfg[L.C_TRACKING_DAYS] = cal.tracking_months * DAYS_PER_MONTH
    cfg[L.C_MIN_TREATMENT_DAYS] = scenario.treatment.min_days
    cfg[L.C_MAX_TREATMENT_DAYS] = scenario.treatment.max_days
    cfg[L.C_AGE_MIN] = scenario.young_people.age_min_years
    cfg[L.C_AGE_MAX] = scenario.young_people.age_max_years
    cfg[L.C_REFERENCE_AGE] = scenario.care.reference_age_years
    cfg[L.C_CARE_END_AGE] = scenario.care.leaves_care_at_age
    cfg[L.C_TRACK_FROM] = {"referral": 0.0, "treatment_start": 1.0,
                           "treatment_end": 2.0}[cal.tracking_from]
    cfg[L.C_CASELOAD_LIMIT] = scenario.workforce.caseload_limit
    cfg[L.C_THERAPISTS_IN_WAITING] = scenario.workforce.therapists_in_waiting
    teams = scenario.workforce.teams
    reasons = scenario.referrals.rejection_reasons
    shares = np.array(list(reasons.values()), dtype=np.float64)
    cdf = np.cumsum(shares) / shares.sum() if len(shares) else np.zeros(0)
    contract, finance = scenario.contract, scenario.finance
    lag = contract.payment_lag_quarters if contract else 0
    # Quarters run to the end of the last possible tracking window and its payment.
    # A window opens by service_end at the latest, or a whole treatment after it.
    opens_by = scenario.treatment.max_days if cal.tracking_from == "treatment_end" else 0
    last = cal.service_end + dt.timedelta(
        days=math.ceil(opens_by + cfg[L.C_TRACKING_DAYS] + 92 * (lag + 1)))
    quarters = quarter_starts(origin, last)
    edges = np.array([_days(q, origin) for q in quarters])
    n_cal = len(quarters) - 1

    def quarter_of(d: dt.date | None, default: int) -> int:
        if d is None:
            return default
        return int(np.clip(np.searchsorted(edges, _days(d, origin), side="right") - 1,
                           0, n_cal - 1))

    # The calendar quarters a cohort's days can fall in: from the cohort's quarter to
    # that of the latest end of a window opening in it (see kernels.bump_cohort).
    window_ends = edges[1:] + cfg[L.C_TRACKING_DAYS]
    last_q = np.searchsorted(edges, window_ends, side="right") - 1
    cfg[L.C_COHORT_QUARTERS] = min(int(np.max(last_q - np.arange(n_cal))) + 1, n_cal)
    # The cohorts run to the quarter of the last time a window can open: before the
    # referrals end (windows from referral), before the service ends (from a treatment
    # start), or to the last quarter (from a treatment end). The later quarters of a
    # long calendar then hold no cohort to settle and pay.
    opens_before = {"referral": cfg[L.C_REFERRALS_END],
                    "treatment_start": cfg[L.C_SERVICE_END]}.get(cal.tracking_from, np.inf)
    last_cohort = int(np.searchsorted(edges, opens_before, side="left")) - 1
    cfg[L.C_COHORTS] = min(max(last_cohort, 0), n_cal - 1) + 1
    events = contract.outcome_events if contract else []
    if contract:
        cfg[L.C_HAS_CONTRACT] = 1.0
        cfg[L.C_PRICE_PER_DAY] = contract.price_per_care_day_saved
        cfg[L.C_PAYMENT_LAG] = contract.payment_lag_quarters
        cfg[L.C_CLAWBACK] = 1.0 if contract.clawback else 0.0
        cfg[L.C_CAP] = -1.0 if contract.cap is None else contract.cap
        cfg[L.C_LAST_PAYMENT_Q] = quarter_of(contract.last_payment_date, n_cal - 1)
        # The SPV pays costs to the service end even if payments stop before it: it
        # keeps its reserve, and charges its fee, until the later of the two.
        cfg[L.C_WIND_UP_Q] = max(cfg[L.C_LAST_PAYMENT_Q], quarter_of(cal.service_end, n_cal - 1))
        baseline = contract.baseline_care_proportion
        baseline = np.atleast_1d(np.asarray(baseline, dtype=np.float64))
    else:
        baseline = np.zeros(1)
    call_schedule = np.zeros(n_cal)
    if finance:
        for draw, amount in zip(finance.drawdown_schedule or [], finance.scheduled_amounts()):
            call_schedule[quarter_of(draw.date, 0)] += amount
        cfg[L.C_HAS_FINANCE] = 1.0
        cfg[L.C_COMMITMENT] = finance.commitment
        cfg[L.C_RESERVE] = finance.reserve
        cfg[L.C_TRANCHE] = finance.tranche_size if finance.capital_call == "tranche" else 0.0
        cfg[L.C_DISTRIBUTION_FROM_Q] = quarter_of(finance.distribution_start, n_cal)
        cfg[L.C_INVESTOR_SHARE] = finance.investor_share_of_surplus
        cfg[L.C_DISCOUNT_RATE] = finance.discount_rate_per_year
        cfg[L.C_DISCOUNT_RATE_QUARTER] = (1.0 + finance.discount_rate_per_year) ** 0.25 - 1.0
    return Layout(
        config=cfg,
        team_start=np.array([_days(t.start_date, origin) for t in teams]),
        team_size=np.array([t.therapists for t in teams], dtype=np.int64),
        team_weight=np.array([t.referral_weight for t in teams]),
        reason_cdf=cdf,
        reason_names=list(reasons),
        calendar_edges=edges,
        calendar_quarters=quarters[:-1],
        n_tracking_quarters=math.ceil(cal.tracking_months / 3),
        baseline_by_quarter=baseline,
        event_months=np.array([e.months_after_referral for e in events], dtype=np.float64),
        event_prices=np.array([e.price for e in events], dtype=np.float64),
        event_names=[e.name for e in events],
        call_schedule=call_schedule,
    )


def uncertain_parameters(scenario: Scenario) -> list[str]:
    return [name for name, d in iter_params(scenario) if d is not None and not d.is_fixed]


def draw_parameters(scenario: Scenario, seed: int, path_start: int, n: int) -> np.ndarray:
    """Per-path parameter matrix (n, N_PARAMS): fixed values, or ppf of a keyed uniform
    (keyed by parameter and path: the same draws whichever other parameters are uncertain)."""
    dists = [(PARAM_COLUMNS[name], dist) for name, dist in iter_params(scenario)]
    fixed = np.zeros(L.N_PARAMS)   # (a parameter left out of the scenario is 0)
    for col, dist in dists:
        if dist is not None and dist.is_fixed:
            fixed[col] = dist.value
    params = np.empty((n, L.N_PARAMS))
    params[:] = fixed   # row by row: a column at a time writes every row n_params times
    uncertain = [(col, d) for col, d in dists if d is not None and not d.is_fixed]
    if uncertain:
        u = rng.param_uniforms(np.uint64(seed), L.N_PARAMS, path_start, n)
        for col, dist in uncertain:
            params[:, col] = dist.ppf(u[:, col])
    _check_parameters(params, path_start)
    return params


def _check_parameters(params: np.ndarray, path_start: int) -> None:
    med = params[:, L.P_TREATMENT_MEDIAN_DAYS]
    thr = params[:, L.P_SHORT_THRESHOLD_DAYS]
    share = params[:, L.P_SHARE_UNDER_THRESHOLD]
    # sigma = log(thr / med) / ndtri(share) must be finite and positive: ndtri(share)
    # is finite and non-zero for share in (0, 1) other than 0.5, with the sign of share - 0.5
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ratio = np.log(thr) - np.log(med)
    bad = ~((share > 0) & (share < 1) & np.isfinite(log_ratio) & (log_ratio * (share - 0.5) > 0))
    if bad.any():
        i = int(np.argmax(bad))
        raise ParameterError(
            f"treatment: on path {path_start + i}, median_days={med[i]:g}, "
            f"short_threshold_days={thr[i]:g} and share_under_threshold={share[i]:g} do not "
            f"define a lognormal (a median above the threshold needs a share below 0.5, "
            f"and the reverse)")


@dataclass
class _PathColumns:
    """What the one-row-per-path frame is made of: the kernel's outputs (one column a
    name of OUTPUT_COLUMNS), the rejection counts by reason and the drawn parameters.
    The frame is made once (SimulationResult.paths): its arrays are rearranged then."""

    out: np.ndarray
    reasons: np.ndarray | None       # (let go once the frame has its columns)
    reason_names: list[str]
    params: np.ndarray | None
    uncertain: list[str]
    attrs: dict[str, Any]
    path_start: int = 0   # the number of the first path

    def column(self, name: str) -> np.ndarray:
        return self.out[:, OUTPUT_COLUMNS.index(name)]

    def frame(self) -> pd.DataFrame:
        """The frame of paths (made once: the arrays are rearranged as it is made)."""
        import pandas as pd
        n = self.out.shape[0]
        columns = {"path": np.arange(self.path_start, self.path_start + n, dtype=np.int64)}
        reasons = self.by_column(self.reasons[:, :len(self.reason_names)])
        params = self.by_column(self.params[:, [PARAM_COLUMNS[p] for p in self.uncertain]])
        # the drawn parameters let go first: the outputs' copy then reuses their memory
        # (new memory costs more than the copying)
        self.reasons = self.params = None
        # the outputs column by column from here on (the kernels' row-major array let
        # go): the frame's columns are contiguous, and pyarrow writes them uncopied
        self.out = self.by_column(self.out).T
        columns.update(zip(OUTPUT_COLUMNS, self.out.T))
        columns["children_treated"] = self.column("started")
        columns.update(zip([f"rejected_{name}" for name in self.reason_names], reasons))
        columns.update(zip([f"param.{name}" for name in self.uncertain], params))
        frame = pd.DataFrame(columns, copy=False)
        frame.attrs.update(self.attrs)
        return frame

    @staticmethod
    def by_column(rows: np.ndarray, block: int = 4096) -> np.ndarray:
        """A (paths, columns) array as (columns, paths), each column contiguous: copied a
        block of paths at a time, whose rows stay in cache while its columns are written
        (numpy's copy of the transpose reads every row once per column)."""
        columns = np.empty(rows.shape[::-1], rows.dtype)
        for a in range(0, rows.shape[0], block):
            columns[:, a:a + block] = rows[a:a + block].T
        return columns


@dataclass
class SimulationResult:
    """Per-path outputs of one scenario run (Monte Carlo arrays, not yet summarised)."""

    scenario: Scenario
    seed: int
    by_tracking_quarter: np.ndarray     # (paths, quarters since tracking start, Q_*)
    by_calendar_quarter: np.ndarray     # (paths, calendar quarters, K_*)
    calendar_quarters: list[dt.date]
    rejection_reasons: list[str] = field(default_factory=list)
    _path_columns: _PathColumns | None = field(default=None, repr=False)

    @functools.cached_property
    def paths(self) -> pd.DataFrame:
        """One row per path (a pandas frame, made on first use: pandas is a fifth of a
        second of a process's start, which a caller of the arrays alone need not wait for)."""
        return self._path_columns.frame()


def output_bytes(lay: Layout, paths: int) -> int:
    """Bytes of the output arrays (and drawn parameters) of ``paths`` paths: every path's
    outputs are kept, for the quantiles over paths, whatever the chunk size."""
    per_path = (L.N_OUT + lay.n_tracking_quarters * L.N_Q + len(lay.calendar_quarters) * L.N_K
                + max(len(lay.reason_names), 1) + L.N_T + L.N_PARAMS)
    return 8 * per_path * paths


def check_memory(scenario: Scenario, paths: int, lay: Layout | None = None) -> None:
    """Raise NotEnoughMemory if a run of ``paths`` paths would not fit in the memory
    available now (where the system says how much that is)."""
    lay = layout(scenario) if lay is None else lay
    need = PEAK_PER_OUTPUT_BYTE * output_bytes(lay, paths)
    have = memory.available_bytes()
    if have is not None and need > have:
        fit = int(paths * have / need)
        raise NotEnoughMemory(
            f"{paths:,} paths of {scenario.name} need about {need / 1e9:,.1f} GB of memory "
            f"({need / paths / 1e3:.1f} kB a path: every path's outputs are kept), and "
            f"{have / 1e9:,.1f} GB is available; run at most about {fit:,} paths at once")


def output_array(shape: tuple[int, ...]) -> np.ndarray:
    """An output array (simulate_chunk zeroes each path's rows itself) in anonymous memory
    of its own, without numpy's request for huge pages (startup.HUGE_PAGES says why),
    which a program importing the package may still make."""
    size = math.prod(shape) * np.dtype(np.float64).itemsize
    if size == 0:
        return np.empty(shape)
    return np.frombuffer(mmap.mmap(-1, size), np.float64).reshape(shape)


def new_outputs(lay: Layout, paths: int, kept_width: int = 0) -> L.Outputs:
    """Output arrays for ``paths`` paths of a scenario laid out, all zero (``kept_width``:
    room a path for the contract's inputs)."""
    n_cal = len(lay.calendar_quarters)
    # calendar quarters by path: each quarter's rows together in memory, as the figures
    # across paths read them (metrics.quarters_table), and the paths the first axis
    by_quarter = output_array((n_cal, paths, L.N_K)).transpose(1, 0, 2)
    return L.Outputs(
        output_array((paths, L.N_OUT)), output_array((paths, lay.n_tracking_quarters, L.N_Q)),
        by_quarter,
        output_array((paths, max(len(lay.reason_names), 1))),
        output_array((paths, L.N_T)),   # for the reconciliation checks
        output_array((paths, kept_width)))


def simulate(scenario: Scenario, paths: int | None = None, seed: int | None = None,
             chunk_paths: int | None = None, progress: bool | None = False,
             path_start: int = 0) -> SimulationResult:
    """Run the Monte Carlo simulation of ``scenario``: paths path_start .. path_start +
    paths - 1 (a path depends on its number, the scenario and the seed only).

    ``paths``, ``seed`` and ``chunk_paths`` default to the scenario's
    ``simulation`` section. ``progress=None`` shows a progress bar when stderr is a
    terminal.
    """
    result, checks = simulate_unchecked(scenario, paths, seed, chunk_paths, progress,
                                        path_start)
    checks()
    return result


def simulate_unchecked(scenario: Scenario, paths: int | None = None, seed: int | None = None,
                       chunk_paths: int | None = None, progress: bool | None = False,
                       path_start: int = 0) -> tuple[SimulationResult, Callable[[], None]]:
    """:func:`simulate`, with its checks returned rather than run: a function that raises
    as simulate would. A caller can work out figures while they run, and must use
    nothing made from the result until they have passed."""
    run = simulate_arrays(scenario, paths, seed, chunk_paths, progress, path_start)

    def checks() -> None:
        check_arrays(scenario, run, path_start)
        cache.mark_warm()
    return result_of(scenario, run, path_start), checks


def _attrs(scenario: Scenario) -> dict[str, float]:
    """The figures the frame of paths carries: the commitment and the cap."""
    attrs = {}
    if scenario.finance:
        attrs["commitment"] = scenario.finance.commitment
    if scenario.contract and scenario.contract.cap is not None:
        attrs["cap"] = scenario.contract.cap
    return attrs


def check_arrays(scenario: Scenario, run: ArrayRun, path_start: int = 0) -> None:
    """The reconciliation checks and the waterfall's financial invariants, path by path
    (raises ConservationError or invariants.FinancialInvariantError)."""
    o = run.outputs
    check_conservation({name: o.out[:, OUTPUT_COLUMNS.index(name)] for name in _CONSERVED},
                       o.qsr, o.cal, o.totals, _attrs(scenario))
    invariants.check_waterfall(o.cal, run.layout, path_start)


def result_of(scenario: Scenario, run: ArrayRun, path_start: int = 0) -> SimulationResult:
    """A simulation's result made of its arrays (checked by :func:`check_arrays`)."""
    o = run.outputs
    columns = _PathColumns(o.out, o.reasons, run.layout.reason_names, run.params,
                           uncertain_parameters(scenario), _attrs(scenario), path_start)
    return SimulationResult(scenario, run.seed, o.qsr, o.cal, run.layout.calendar_quarters,
                            run.layout.reason_names, columns)


@dataclass
class ArrayRun:
    """A simulation's raw arrays: the layout, the seed, each path's drawn parameters and
    its outputs (with the contract's inputs in ``outputs.kept`` if they were kept)."""

    layout: Layout
    seed: int
    params: np.ndarray
    outputs: L.Outputs


def simulate_arrays(scenario: Scenario, paths: int | None = None, seed: int | None = None,
                    chunk_paths: int | None = None, progress: bool | None = False,
                    path_start: int = 0, keep_contract_inputs: bool = False) -> ArrayRun:
    """The simulation's arrays, before any check or table (see :func:`simulate`);
    ``keep_contract_inputs``: keep what each path's contract read, to run the contract
    alone under other terms (design.py)."""
    sim = scenario.simulation
    n = sim.paths if paths is None else int(paths)
    seed = sim.seed if seed is None else int(seed)
    chunk = sim.chunk_paths if chunk_paths is None else int(chunk_paths)
    if n < 1 or chunk < 1 or seed < 0 or path_start < 0:
        raise ValueError("paths and chunk_paths must be positive, seed and path_start "
                         "non-negative")
    lay = layout(scenario)
    check_memory(scenario, n, lay)
    if progress is not False:
        say_if_compiling()
    arrays = scenario_arrays(lay)
    outputs = new_outputs(lay, n, L.kept_width(arrays) if keep_contract_inputs else 0)
    # every path's parameters at once (they depend on the path number only): a bad draw
    # is reported before any simulating, and one call costs less than one per chunk
    params = draw_parameters(scenario, seed, path_start, n)
    _check_referral_volume(params, lay)
    _check_staffing(params, lay)
    bar = _progress_bar(n, scenario.name, progress)
    if cluster.active() is not None and not keep_contract_inputs:
        pieces = cluster.simulate_chunks(_worker_chunk, scenario, seed, path_start, n, chunk)
    else:
        pieces = _local_chunks(seed, path_start, params, arrays, outputs, chunk)
    for a, m, piece in pieces:
        if piece is not None:   # a chunk simulated elsewhere: into its rows
            for mine, theirs in zip(outputs, piece, strict=True):
                mine[a:a + m] = theirs
        if bar is not None:
            bar.update(m)
    if bar is not None:
        bar.close()
    return ArrayRun(lay, seed, params, outputs)


def _worker_chunk(scenario, seed: int, path_start: int, n: int) -> L.Outputs:
    """On a Dask worker: paths path_start .. path_start + n - 1, simulated as a local
    run simulates a chunk."""
    return simulate_arrays(scenario, paths=n, seed=seed, chunk_paths=n,
                           path_start=path_start).outputs


def _local_chunks(seed, path_start, params, arrays, outputs, chunk):
    """(offset, paths, None) of each chunk, simulated here into its rows of ``outputs``."""
    workers = threads()
    for a in range(0, params.shape[0], chunk):
        b = min(a + chunk, params.shape[0])
        run_chunk(np.uint64(seed), path_start + a, params[a:b], arrays,
                  L.Outputs(*(x[a:b] for x in outputs)), workers)
        yield a, b - a, None


def threads() -> int:
    """The threads the kernels run on (numba's, set by NUMBA_NUM_THREADS)."""
    return kernels.threads()


def kernels_cached(part: str = "simulation") -> bool:
    """Whether ``part`` of the kernels (kernels.cache.is_warm) loads from the disk cache
    (False: its next use compiles it first)."""
    return cache.is_warm(part)


def mark_cached(part: str) -> None:
    """Record that ``part`` of the kernels is in the disk cache (every kernel of it has
    run in this process)."""
    cache.mark_warm(part)


def say_if_compiling() -> None:
    """Say on stderr that the kernels are about to be compiled, if the cache has none."""
    if not kernels_cached():
        print("compiling the simulation kernels: once after installing or changing them, "
              "about 20-30 seconds on 2 cores ...", file=sys.stderr, flush=True)


def _progress_bar(total: int, name: str, progress: bool | None):
    """A tqdm bar (None: shown when stderr is a terminal), or None for no bar; tqdm is
    imported only when a bar may be shown (a twentieth of a second at start-up)."""
    if progress is False:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, unit="path", disable=None if progress is None else not progress,
                desc=name, leave=False)


class ConservationError(AssertionError):
    pass


class _Columns:
    """The checked columns as attributes (f.started), and the frame's attrs."""

    def __init__(self, columns: Mapping[str, np.ndarray], attrs: Mapping[str, float]):
        self.__dict__.update(columns)
        self.attrs = attrs


_CONSERVED = ("referrals", "accepted", "rejected", "started", "lost_wait", "lost_care",
              "lost_service_end", "completed", "noncompleted", "child_days",
              "care_days_treated", "care_days_counterfactual", "capital_drawn",
              "outcome_payments")


def check_conservation(paths: pd.DataFrame | Mapping[str, np.ndarray], qsr: np.ndarray,
                       cal: np.ndarray, totals: np.ndarray | None = None,
                       attrs: Mapping[str, float] | None = None) -> None:
    """Reconciliation checks run on every simulation (lifelib-style): raise if any fails.
    ``paths``: the one-row-per-path outputs (a frame, or the _CONSERVED columns by name);
    ``attrs``: the commitment and cap (default: the frame's attrs). ``totals``: the
    per-path totals (kernels.path_totals) of qsr and cal, if the caller has them
    (simulate_chunk works them out as it writes the outputs)."""
    if totals is None:
        totals = conservation_totals(cal, np.ascontiguousarray(qsr))
    if attrs is None:
        attrs = getattr(paths, "attrs", {})
    # numpy arrays rather than pandas columns: a check costs a pass over the paths only
    f = _Columns({name: np.asarray(paths[name]) for name in _CONSERVED}, attrs)
    checks = {
        "referrals = accepted + rejected": f.referrals - f.accepted - f.rejected,
        "accepted = started + lost": f.accepted - f.started - f.lost_wait - f.lost_care
        - f.lost_service_end,
        "started = completed + noncompleted": f.started - f.completed - f.noncompleted,
        "child days by tracking quarter add up": totals[:, L.T_QSR_CHILD_DAYS] - f.child_days,
        "child days by calendar quarter add up": totals[:, L.T_CHILD_DAYS] - f.child_days,
        "treated care days by calendar quarter add up":
            totals[:, L.T_CARE_TREATED] - f.care_days_treated,
        "counterfactual care days by calendar quarter add up":
            totals[:, L.T_CARE_COUNTERFACTUAL] - f.care_days_counterfactual,
    }
    if not np.all(np.isfinite(totals[:, :L.T_CARE_OVER_CHILD])):
        raise ConservationError("conservation check failed: a day or cash total is not finite")
    n = len(f.child_days)
    tolerance = 1e-6 * max(1.0, float(f.child_days.max()) if n else 1.0)
    for name, diff in checks.items():
        worst = float(np.max(np.abs(diff))) if n else 0.0
        if worst > tolerance:
            raise ConservationError(f"conservation check failed: {name} (worst {worst:g})")
    if not np.all(np.isfinite(f.outcome_payments)):
        raise ConservationError("conservation check failed: an outcome payment total is "
                                "not finite")
    if not np.all(np.isnan(f.capital_drawn)):
        if not np.all(np.isfinite(f.capital_drawn)):
            raise ConservationError("conservation check failed: capital drawn is not finite")
        if np.max(totals[:, L.T_CASH_IMBALANCE], initial=0.0) > 0.01:
            raise ConservationError("conservation check failed: capital calls + outcome payments "
                                    "= costs + distributions + change in cash balance")
        commitment = f.attrs.get("commitment", np.inf)
        if np.any(f.capital_drawn > commitment + 0.01):
            raise ConservationError("conservation check failed: capital drawn exceeds commitment")
    cap = f.attrs.get("cap")
    if cap is not None and np.any(f.outcome_payments > cap + 0.01):
        raise ConservationError("conservation check failed: outcome payments exceed the cap")
    if np.any(totals[:, L.T_CARE_OVER_CHILD] > 1e-6):
        raise ConservationError("conservation check failed: care days exceed child days")
