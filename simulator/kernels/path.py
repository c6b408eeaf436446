"""One path: the processes in order, over work arrays cut from the thread's workspace."""

from ..layout import (
    C_HAS_CONTRACT,
    C_REFERRALS_END,
    DAYS_PER_MONTH,
    DAYS_PER_YEAR,
    K_THERAPIST_DAYS,
    N_CO,
    O_THERAPIST_DAYS,
    P_START_DELAY_MONTHS,
    S_REFERRAL,
    S_REFERRAL_COUNT,
    S_THERAPIST,
)
from .binning import settle, settle_cohorts
from .cache import path_helper
from .capacity import run_capacity
from .care import QSR_WIDTH, care_outcomes
from .contract import contract_and_finance
from .kept import keep_contract_inputs
from .referrals import count_referrals, screen_referrals
from .rng import stream_key
from .treatment import treatment_figures, treatment_outcomes
from .vector import INF
from .work import (
    F_LENGTHS,
    F_MEDIAN,
    fits,
    path_sizes,
    path_work,
    people_of,
    person_work,
    queue_of,
    referrals_of,
)
from .workforce import simulate_workforce, staffing_events
from .young_people import draw_young_people

# simulate_path's answer: the path is done, or it needs more room and to be simulated again
PATH_DONE = 0
WORKSPACE_SMALL = 1   # the workspace was too small: grow it
EVENTS_FULL = 2       # the staffing events did not fit: allow more


# inlined into simulate_chunk: compiled on its own, the chunk's module would optimise and
# generate the whole path again
@path_helper
def simulate_path(seed, path, prm, scenario, rows, ws, ev_cap):
    """One path (its parameters prm) into its rows of the outputs (zeroed by the caller),
    its work arrays cut from the workspace ws (ev_cap: room for staffing events).
    Returns PATH_DONE, or WORKSPACE_SMALL or EVENTS_FULL, when the caller makes more
    room and calls again."""
    cfg = scenario.config
    work, at = path_work(ws, path_sizes(prm, scenario, rows.qsr.shape[0], ev_cap))
    if not fits(ws, at):
        return WORKSPACE_SMALL
    first_year = _delayed_starts(prm, scenario.team_start, work.team_start)
    n_ev = simulate_workforce(stream_key(seed, S_THERAPIST, path), prm, scenario,
                              work.team_start, work.staffing, rows)
    if n_ev < 0:
        return EVENTS_FULL
    rows.out[O_THERAPIST_DAYS] = rows.cal[:, K_THERAPIST_DAYS].sum()
    count_referrals(stream_key(seed, S_REFERRAL_COUNT, path), prm, work.team_start,
                    scenario.team_weight, cfg[C_REFERRALS_END], work.counting)
    n_ref = work.counting.counts.sum()
    mats, at = person_work(ws, at, n_ref)
    if not fits(ws, at):
        return WORKSPACE_SMALL
    n_acc = screen_referrals(stream_key(seed, S_REFERRAL, path), prm, scenario,
                             work.team_start, first_year, work.counting.counts,
                             referrals_of(mats, n_ref), people_of(mats, n_ref), rows)
    # every array after screening is the accepted young people's, in order
    people = people_of(mats, n_acc)
    # drawn in one branch-free pass, before the event logic that uses them, so that the
    # latency of log, exp and the normal quantile overlaps across young people
    draw_young_people(prm, cfg, people)
    run_capacity(prm, scenario, people, staffing_events(work.staffing, n_ev),
                 queue_of(mats, n_acc), (work.caseload, work.staffed))
    _clear_binning(work)
    lengths = mats[0][F_LENGTHS, :n_acc]
    started = treatment_outcomes(people, scenario, first_year, work.binning.k_slope, rows,
                                 lengths)
    care_outcomes(prm, scenario, people, work, rows)
    _settle_days(scenario, work.binning, rows)
    if cfg[C_HAS_CONTRACT] > 0.5:
        if rows.kept.shape[0] > 0:   # for the contract to run alone later (recontract)
            keep_contract_inputs(work, rows.kept)
        contract_and_finance(prm, scenario, work.team_start, work.binning, work.money, rows)
    treatment_figures(prm, cfg, rows.out, n_ref, started, lengths, work.median_counts,
                      mats[0][F_MEDIAN])
    return PATH_DONE


@path_helper
def _delayed_starts(prm, team_start0, team_start):
    """Each team's start after the path's start delay (into team_start), and the first
    year of referrals: (start, end)."""
    delay = prm[P_START_DELAY_MONTHS] * DAYS_PER_MONTH
    first_year_a = INF
    for k in range(team_start0.shape[0]):
        team_start[k] = team_start0[k] + delay
        first_year_a = min(first_year_a, team_start[k])
    return first_year_a, first_year_a + DAYS_PER_YEAR


@path_helper
def _clear_binning(work):
    """The binning arrays and the in-care flags, zeroed before the outcomes."""
    b = work.binning
    b.k_slope[:] = 0.0
    b.q_slope[:] = 0.0
    b.cohort_days[:] = 0.0
    b.cohort_slope[:] = 0.0
    b.event_counts[:] = 0.0
    work.in_care[:] = False


@path_helper
def _settle_days(scenario, binning, rows):
    """The slope-binned days settled into days per quarter (binning.settle)."""
    edges = scenario.calendar_edges
    settle(edges, 0.0, binning.k_slope, rows.cal)
    settle(edges[:0], QSR_WIDTH, binning.q_slope, rows.qsr)
    if scenario.config[C_HAS_CONTRACT] > 0.5:
        for co in range(N_CO):
            settle_cohorts(edges, binning.cohort_slope[co], binning.cohort_days[co])
