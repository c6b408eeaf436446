"""What a path keeps of its contract's inputs (Outputs.kept), and their restoring: the
care days by tracking cohort, outcome events and team starts that the contract reads,
in layout.kept_width's order (recontract runs the contract again from them)."""

from .cache import path_helper, path_kernel


@path_kernel
def keep_contract_inputs(work, kept):
    """A path's contract inputs (its care days by cohort, outcome events and team
    starts) into its row ``kept``, in layout.kept_width's order."""
    at = _copy3(work.binning.cohort_days, kept, 0, True)
    at = _copy3(work.binning.event_counts, kept, at, True)
    for k in range(work.team_start.shape[0]):
        kept[at + k] = work.team_start[k]


@path_kernel
def restore_contract_inputs(kept, work):
    """keep_contract_inputs in reverse: a kept row back into a path's work arrays."""
    at = _copy3(work.binning.cohort_days, kept, 0, False)
    at = _copy3(work.binning.event_counts, kept, at, False)
    for k in range(work.team_start.shape[0]):
        work.team_start[k] = kept[at + k]


@path_helper
def _copy3(a, flat, at, out):
    """A 3-D array into ``flat`` from ``at`` (out) or back from it; the offset after."""
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            for k in range(a.shape[2]):
                if out:
                    flat[at] = a[i, j, k]
                else:
                    a[i, j, k] = flat[at]
                at += 1
    return at
