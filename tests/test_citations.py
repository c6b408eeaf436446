"""Each input's source is read from the comment on the line that sets it."""
import textwrap

import yaml

import simulator
from simulator.citations import input_sources, source_of

from helpers import ESSEX, small_scenario_dict


def _file(tmp_path, text: str):
    f = tmp_path / "s.yaml"
    f.write_text(text, encoding="utf-8")
    return f


def test_kinds_from_comments_and_the_enclosing_keys(tmp_path):
    d = small_scenario_dict()
    body = yaml.safe_dump({k: v for k, v in d.items() if k not in ("contract", "treatment")},
                          sort_keys=False)
    base = _file(tmp_path, body + textwrap.dedent("""\
        treatment:            # [REES2019] Section 5: the whole block
          median_days: 142    # [SF2014] p. 7 "a # inside" a quote
          hazard_ratio_during: 0.4  # ratio; ASSUMPTION to the care proportion; FITTED (x)
          hazard_ratio_after: 0.5   # ratio; ASSUMPTION: no published figure
          short_threshold_days: 90
          share_under_threshold: 0.14
          min_days: 10
          max_days: 361
          noncompletion_share: 0.15
        """))
    sources = input_sources(simulator.load_scenario(base).origins)
    assert source_of("treatment.median_days", sources).kind == "CITED"
    assert source_of("treatment.median_days", sources).note.startswith('[SF2014] p. 7 "a # in')
    assert source_of("treatment.hazard_ratio_during", sources).kind == "FITTED"
    assert source_of("treatment.hazard_ratio_after", sources).kind == "ASSUMPTION"
    silent = source_of("treatment.short_threshold_days", sources)   # takes its block's
    assert silent.kind == "CITED" and "[REES2019]" in silent.note
    assert silent.where == f"{base}:{body.count(chr(10)) + 5}"
    assert source_of("treatment.effect_half_life_days", sources).kind == "DEFAULT"


def test_an_override_is_marked_as_set(tmp_path):
    base = _file(tmp_path, yaml.safe_dump(small_scenario_dict(), sort_keys=False))
    loaded = simulator.load_scenario(base, {"treatment.median_days": 150})
    sources = input_sources(loaded.origins)
    assert source_of("treatment.median_days", sources).kind == "SET"
    assert source_of("treatment.max_days", sources).kind == "UNSOURCED"   # no comment


def test_the_essex_care_cost_is_an_assumption_and_its_therapy_length_cited():
    sources = input_sources(simulator.load_scenario(ESSEX).origins)
    care_cost = source_of("contract.care_cost_per_day", sources)
    assert care_cost.kind == "ASSUMPTION" and care_cost.where.endswith(
        f"essex_mst.yaml:{_line_of(ESSEX, 'care_cost_per_day:')}")
    assert source_of("treatment.median_days", sources).note.startswith("days; [REES2019]")
    assert source_of("treatment.hazard_ratio_during", sources).kind == "FITTED"


def _line_of(path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)
