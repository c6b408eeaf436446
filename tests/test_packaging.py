"""pyproject.toml's lower bounds are what `make test-oldest` tests: tests/oldest-versions.txt
pins every dependency at its bound (the bound's own release, or the first patch release
where no wheel of the bound exists), so that a bound raised or added is tested too."""
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from helpers import ROOT


def _oldest_pins() -> dict[str, Version]:
    pins = {}
    for line in (ROOT / "tests" / "oldest-versions.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", line
            pins[canonicalize_name(req.name)] = Version(spec.version)
    return pins


def test_the_oldest_versions_tested_are_the_lower_bounds_of_every_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [Requirement(d) for d in project["dependencies"]]
    pins = _oldest_pins()
    assert set(pins) == {canonicalize_name(r.name) for r in requirements}
    for req in requirements:
        lower = [s for s in req.specifier if s.operator == ">="]
        assert len(lower) == 1, f"{req}: one lower bound, tested by make test-oldest"
        bound = Version(lower[0].version)
        pin = pins[canonicalize_name(req.name)]
        assert pin in req.specifier, (str(req), str(pin))
        assert pin.release[:len(bound.release)] == bound.release, (str(req), str(pin))
