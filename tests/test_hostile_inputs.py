"""Hostile and odd input, in scenario files and in --set values alike (one policy,
simulator.yamlfiles): each case is refused at once with one line per problem naming
the file (and the line and key where there is one), exit status 2, no traceback,
nothing written, and no word of a file that is not a scenario quoted back."""
import os
import re
import subprocess
import sys
import time

import pytest
import yaml

from simulator import yamlfiles
from simulator.loader import ScenarioError, load_scenario

from helpers import ESSEX, ROOT

SECRETS = ["root:$6$Zq9sEcReThAsH$Xy1:19000:0:99999:7:::",
           "daemon:*:19000:0:99999:7:::",
           "api_token: SUPERSECRETTOKEN42",
           "password: hunter2-correct-horse"]
SECRET_WORDS = ["Zq9sEcReThAsH", "daemon", "api_token", "SUPERSECRETTOKEN42", "password",
                "hunter2", "99999"]


def sibsim(*args, cwd=None):
    """The command line, as a user runs it; every hostile case must end within 10 s."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "simulator", *map(str, args)],
                          capture_output=True, text=True, timeout=10, cwd=cwd)
    proc.seconds = time.perf_counter() - t0
    return proc


def refused(proc, named, out=None, *, lines: int | None = 1):
    """Exit 2, no traceback, every error line naming ``named``, ``lines`` of them (None:
    any number), and nothing in ``out``; the errors, as a list of lines."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert errors, proc.stderr
    if lines is not None:
        assert len(errors) == lines, proc.stderr
    for line in errors:
        if not line.startswith("error: ... and "):
            assert str(named) in line, (named, line)
        assert len(line) < 1200, line[:300]
    if out is not None:
        assert not out.exists() or list(out.iterdir()) == [], list(out.iterdir())
    return errors


def essex_with(tmp_path, replace: dict[str, str], name="bad.yaml"):
    text = ESSEX.read_text(encoding="utf-8")
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new, 1)
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def line_of(path, needle):
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


@pytest.fixture
def essex(tmp_path):
    path = tmp_path / "essex.yaml"
    path.write_text(ESSEX.read_text(encoding="utf-8"), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- --set values
def _bomb(levels: int) -> str:
    """Nine aliases a level: 9**levels values from a few hundred characters."""
    items = ["&a0 [1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    items += [f"&a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "[" + ", ".join(items) + "]"


def test_an_alias_bomb_in_set_is_refused_as_in_a_file(essex, tmp_path):
    out = tmp_path / "out"
    proc = sibsim("run", essex, "--out", out, "--quiet",
                  "--set", f"referrals.per_team_per_month={_bomb(9)}")
    [error] = refused(proc, "--set referrals.per_team_per_month=", out)
    assert "referrals.per_team_per_month: YAML aliases expand this value past 100,000 values" \
        in error
    # five levels (59,049 values) is within the limit a file has too: the schema refuses
    # it, in one line, not in megabytes of the expanded value
    proc = sibsim("run", essex, "--out", out, "--quiet",
                  "--set", f"referrals.per_team_per_month={_bomb(5)}")
    [error] = refused(proc, "--set referrals.per_team_per_month=", out)
    assert "referrals.per_team_per_month: expected a number" in error
    assert len(proc.stderr) < 2000
    # the same bomb in a file
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(ESSEX.read_text(encoding="utf-8") + f"\nextra: {_bomb(9)}\n")
    [error] = refused(sibsim("validate", bomb), bomb)
    assert "YAML aliases expand this file past 100,000 values" in error


def test_deep_nesting_in_set_is_refused_as_in_a_file(essex, tmp_path):
    out = tmp_path / "out"
    for value in ("[" * 1000 + "]" * 1000, "{a: " * 1000 + "1" + "}" * 1000, "[" * 100_000):
        proc = sibsim("run", essex, "--out", out, "--set", f"referrals.per_team_per_month={value}")
        [error] = refused(proc, "--set referrals.per_team_per_month=", out)
        assert "referrals.per_team_per_month: YAML nested too deeply: more than 32 levels" \
            in error
    deep = tmp_path / "deep.yaml"
    deep.write_text("name: x\ncalendar:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 60)))
    [error] = refused(sibsim("validate", deep), deep)
    # the top level, calendar's mapping at line 3, k1's at line 4, ...: the 33rd at line 34
    assert f"{deep}:34: <top>: YAML nested too deeply" in error


def test_set_values_are_one_line_each_whatever_they_hold(essex, tmp_path):
    out = tmp_path / "out"
    proc = sibsim("run", essex, "--out", out, "--set", "referrals.per_team_per_month=[1,\n2")
    [error] = refused(proc, "--set referrals.per_team_per_month=[1,\\n2", out)
    assert "value is not valid YAML" in error
    proc = sibsim("run", essex, "--out", out, "--set", "referrals.dispersion=" + "x" * 50_000)
    [error] = refused(proc, "--set referrals.dispersion=xxx", out)
    assert error.count("more characters") == 2   # the --set and the value in the message


# --------------------------------------------------------------------------- what FILE is
def test_a_device_is_refused_at_once(tmp_path):
    out = tmp_path / "out"
    for command in ("run", "validate"):
        args = [command, "/dev/zero"] + (["--out", out] if command == "run" else [])
        proc = sibsim(*args)
        [error] = refused(proc, "/dev/zero", out)
        assert "not a scenario file: a character device, not a regular file" in error
        assert proc.seconds < 10


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path, essex):
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    out = tmp_path / "out"
    [error] = refused(sibsim("run", fifo, "--out", out), fifo, out)
    assert "not a scenario file: a FIFO (named pipe), not a regular file" in error
    # and as the base of another file
    child = tmp_path / "child.yaml"
    child.write_text(f"extends: {fifo.name}\nname: child\n")
    [error] = refused(sibsim("run", child, "--out", out), child, out)
    assert f"{child}:1: extends: base file {fifo}: not a scenario file: a FIFO" in error
    [error] = refused(sibsim("batch", fifo, "--out", out, "--dry-run"), fifo, out)


def test_a_directory_is_refused(tmp_path):
    folder = tmp_path / "folder.yaml"
    folder.mkdir()
    proc = sibsim("validate", folder)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"'{folder}' is a directory" in proc.stderr
    with pytest.raises(ScenarioError, match="not a scenario file: a directory"):
        load_scenario(folder)


def test_a_file_past_1_mb_is_refused_unread(tmp_path, monkeypatch):
    big = tmp_path / "big.yaml"
    big.write_text(ESSEX.read_text(encoding="utf-8")
                   + "".join(f"# padding {i:08d}\n" for i in range(2_000_000 // 19)))
    assert big.stat().st_size > 2_000_000
    out = tmp_path / "out"
    proc = sibsim("run", big, "--out", out)
    [error] = refused(proc, big, out)
    assert f"file is {big.stat().st_size:,} bytes; a scenario file is at most 1 MB" in error
    assert proc.seconds < 10
    child = tmp_path / "child.yaml"   # as the base of another file
    child.write_text("extends: big.yaml\nname: child\n")
    [error] = refused(sibsim("validate", child), child)
    assert f"{child}:1: extends: base file {big}: file is {big.stat().st_size:,} bytes" in error
    # not a byte of it is read
    read = []
    real_read = os.read
    monkeypatch.setattr(yamlfiles.os, "read", lambda fd, n: read.append(n) or real_read(fd, n))
    with pytest.raises(ScenarioError, match="at most 1 MB"):
        load_scenario(big)
    assert read == []
    # one that fits is read once, in chunks, and never past the limit
    load_scenario(ESSEX)
    assert 0 < sum(read) <= yamlfiles.MAX_FILE_BYTES + 1


def test_sixty_thousand_plain_keys_are_refused_or_accepted_for_what_they_are(tmp_path, essex):
    # no alias anywhere: none of these is refused "for aliases"
    top = tmp_path / "keys.yaml"
    top.write_text("".join(f"k{i:06d}: {i}\n" for i in range(60_000)))
    assert top.stat().st_size <= yamlfiles.MAX_FILE_BYTES
    [error] = refused(sibsim("validate", top), top)
    assert "not a scenario file: its top level has no extends: and none of the sections" in error
    # in a scenario section: 60,000 unknown keys, the first 100 shown
    inside = essex_with(tmp_path, {"referrals:\n": "referrals:\n" + "".join(
        f"  x{i:05d}: 1\n" for i in range(60_000))}, "inside.yaml")
    assert inside.stat().st_size <= yamlfiles.MAX_FILE_BYTES
    proc = sibsim("validate", inside)
    errors = refused(proc, inside, lines=101)
    assert f"{inside}:{line_of(inside, 'x00000:')}: referrals.x00000: unknown key" in errors[0]
    assert errors[-1] == "error: ... and 59,900 more problems, not shown"
    assert "60,000 problems found; nothing was written." in proc.stderr
    assert "alias" not in proc.stderr
    # where a mapping of any size belongs: 50,000 rejection reasons are a valid scenario
    reasons = "{" + ", ".join(f"r{i:05d}: 2e-5" for i in range(50_000)) + "}"
    text = re.sub(r"  rejection_reasons:.*?\n(?:    .*\n)+", "  rejection_reasons: "
                  + reasons.replace("\\", "\\\\") + "\n", ESSEX.read_text(encoding="utf-8"),
                  count=1)
    valid = tmp_path / "many_reasons.yaml"
    valid.write_text(text)
    assert valid.stat().st_size <= yamlfiles.MAX_FILE_BYTES
    proc = sibsim("validate", valid)
    assert proc.returncode == 0, proc.stderr[-2000:]


# --------------------------------------------------------------------------- other files
@pytest.mark.parametrize("shape", ["passwd-like", "mapping", "list", "unparsable"])
def test_a_file_that_is_not_a_scenario_is_never_quoted(tmp_path, shape):
    text = {"passwd-like": "\n".join(SECRETS[:2]),
            "mapping": "\n".join(SECRETS[2:]),
            "list": "\n".join(f"- {s}" for s in SECRETS),
            "unparsable": "\n".join(SECRETS) + "\n  - [unclosed: {"}[shape] + "\n"
    secret = tmp_path / "shadow"
    secret.write_text(text)
    secret_yaml = tmp_path / "shadow.yaml"   # extends names YAML files only
    secret_yaml.write_text(text)
    out = tmp_path / "out"
    child = tmp_path / "child.yaml"
    cases = [(None, ("run", secret, "--out", out), secret),
             (None, ("validate", secret), secret),
             (None, ("batch", secret, "--out", out, "--dry-run"), secret)]
    for base in (secret, secret_yaml, "/etc/shadow"):
        # a base that does not parse is placed at its own line; else at the extends
        named = secret_yaml if base == secret_yaml and shape == "unparsable" else child
        cases += [(base, ("run", child, "--out", out), named), (base, ("validate", child), named)]
    for base, args, named in cases:
        if base is not None:
            child.write_text(f"extends: {base}\nname: child\n")
        proc = sibsim(*args)
        [error] = refused(proc, named, out)
        assert "not a scenario file" in error or "must name a YAML scenario file" in error
        for word in SECRET_WORDS:
            assert word not in proc.stderr + proc.stdout, (args, word, proc.stderr)


def test_etc_shadow_itself_is_one_line(tmp_path):
    out = tmp_path / "out"
    proc = sibsim("run", "/etc/shadow", "--out", out)
    [error] = refused(proc, "/etc/shadow", out)
    assert "not a scenario file" in error or "cannot read file" in error
    child = tmp_path / "child.yaml"
    child.write_text("extends: /etc/shadow\nname: child\n")
    [error] = refused(sibsim("run", child, "--out", out), child, out)
    assert (f"{child}:1: extends: extends must name a YAML scenario file (.yaml or .yml), "
            f"e.g. ../essex_mst.yaml; got '/etc/shadow'") in error


def test_symlink_loops_are_one_line(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.symlink_to(b.name)
    b.symlink_to(a.name)
    out = tmp_path / "out"
    for args in (("run", a, "--out", out), ("validate", a), ("batch", a, "--out", out)):
        [error] = refused(sibsim(*args), a, out)
        assert "cannot read file: Too many levels of symbolic links (a loop of symbolic links)" \
            in error
    child = tmp_path / "child.yaml"
    child.write_text("extends: a.yaml\nname: child\n")
    for args in (("run", child, "--out", out), ("validate", child)):
        [error] = refused(sibsim(*args), child, out)
        assert f"{child}:1: extends: base file {a}: cannot read file: Too many levels" in error


def test_unreadable_paths_are_one_line(tmp_path, essex):
    out = tmp_path / "out"
    through_a_file = essex / "inside.yaml"
    [error] = refused(sibsim("run", through_a_file, "--out", out), through_a_file, out)
    assert "cannot read file: Not a directory" in error
    long_name = tmp_path / ("x" * 300 + ".yaml")
    [error] = refused(sibsim("validate", long_name), str(long_name)[:150])
    assert "cannot read file: File name too long" in error
    if os.geteuid() != 0:   # root reads any file
        locked = tmp_path / "locked.yaml"
        locked.write_text(ESSEX.read_text(encoding="utf-8"))
        locked.chmod(0)
        [error] = refused(sibsim("run", locked, "--out", out), locked, out)
        assert "cannot read file: Permission denied" in error


# --------------------------------------------------------------------------- YAML 1.2
def test_yaml_1_1_forms_are_read_as_yaml_1_2(tmp_path):
    bad = essex_with(tmp_path, {"  max_wait_days: 42 ": "  max_wait_days: 1:30 ",
                                "  clawback: false ": "  clawback: yes "})
    out = tmp_path / "out"
    for args in (("validate", bad), ("run", bad, "--out", out)):
        errors = refused(sibsim(*args), bad, out, lines=2)
        assert errors[0].startswith(f"error: {bad}:{line_of(bad, 'max_wait_days:')}: "
                                    f"workforce.max_wait_days: expected a number")
        assert "got str '1:30'" in errors[0]
        assert errors[1] == (f"error: {bad}:{line_of(bad, 'clawback:')}: contract.clawback: "
                             f"Input should be a valid boolean")
    for assignment, key in (("workforce.max_wait_days=1:30", "workforce.max_wait_days"),
                            ("contract.clawback=yes", "contract.clawback"),
                            ("contract.clawback=on", "contract.clawback")):
        [error] = refused(sibsim("run", ESSEX, "--out", out, "--set", assignment),
                          f"--set {assignment}", out)
        assert f"error: --set {assignment}: {key}: " in error
    # 010 is ten, not eight
    ten = essex_with(tmp_path, {"      therapists: 4": "      therapists: 010"}, "ten.yaml")
    assert load_scenario(ten).scenario.workforce.teams[0].therapists == 10
    # what YAML 1.1 and 1.2 agree on reads as before
    assert yamlfiles.load_yaml("{a: true, b: False, c: 7.1e6, d: 2013-04-01, e: 0o10, "
                               "f: 0x1F, g: .inf, h: ~, i: 100_000, j: 1:30, k: yes, l: 08}") \
        == {"a": True, "b": False, "c": 7.1e6, "d": __import__("datetime").date(2013, 4, 1),
            "e": 8, "f": 31, "g": float("inf"), "h": None, "i": 100_000, "j": "1:30",
            "k": "yes", "l": 8}


def test_explicit_tags_that_cannot_be_read_are_located_errors(tmp_path):
    for value in ("!!float abc", "!!bool maybe", "!!timestamp soon", "!!int 0b101",
                  "9" * 5000):
        bad = essex_with(tmp_path, {"  acceptance_share: 0.70": f"  acceptance_share: {value}"})
        [error] = refused(sibsim("validate", bad), bad)
        assert f"{bad}:{line_of(bad, 'acceptance_share:')}: <top>: cannot read this value as" \
            in error


# --------------------------------------------------------------------------- stresses in run
@pytest.mark.parametrize("entry, message", [
    ("stresses:\n  ../../x:\n    referrals.per_team_per_month: {scale: 0.7}\n",
     "4: stresses.../../x: names may use letters, digits, _ and - only"),
    ("stresses:\n  nan:\n    referrals.per_team_per_month: .nan\n",
     "5: referrals.per_team_per_month: expected a finite number, got nan"),
    ("sweeps:\n  s:\n    referrals.per_team_per_month: [.nan, 3]\n",
     "5: referrals.per_team_per_month: expected a finite number, got nan"),
])
def test_run_refuses_the_stresses_and_sweeps_validate_refuses(tmp_path, essex, entry, message):
    f = tmp_path / "stressed.yaml"
    f.write_text(f"extends: {essex.name}\nname: stressed\n{entry}")
    out = tmp_path / "out"
    validate = sibsim("validate", f)
    run = sibsim("run", f, "--out", out, "--paths", "2", "--quiet")
    errors = refused(run, f, out)
    assert errors == refused(validate, f)
    assert f"{f}:{message}" in errors[0]


# --------------------------------------------------------------------------- the two parsers
def _tree(node, out):
    out.append((type(node).__name__, node.tag, node.start_mark.line, node.start_mark.column,
                node.end_mark.line, node.end_mark.column,
                node.value if isinstance(node, yaml.ScalarNode) else None))
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            _tree(k, out)
            _tree(v, out)
    elif isinstance(node, yaml.SequenceNode):
        for v in node.value:
            _tree(v, out)
    return out


@pytest.mark.parametrize("loader", ["PyYamlLoader", "CYamlLoader"])
def test_both_parsers_give_the_lines_pyyaml_gives_and_the_same_limits(loader, monkeypatch):
    if not hasattr(yamlfiles, loader):
        pytest.skip("PyYAML without libyaml")
    monkeypatch.setattr(yamlfiles, "YamlLoader", getattr(yamlfiles, loader))
    for f in sorted((ROOT / "scenarios").rglob("*.yaml")):
        text = f.read_text(encoding="utf-8")
        # the tags differ where YAML 1.1 and 1.2 do; the nodes and their marks do not
        expected = [x[:1] + x[2:] for x in _tree(yaml.compose(text, Loader=yaml.SafeLoader), [])]
        assert [x[:1] + x[2:] for x in _tree(yamlfiles.compose_yaml(text), [])] == expected, f
        if "targets" not in f.name:
            assert load_scenario(f).scenario is not None
    for text, message in (("a: " + "[" * 40, "nested too deeply"),
                          ("a: " + _bomb(9), "aliases expand this file past 100,000"),
                          ("a: &x [*x]", "refers to the anchored value it is inside"),
                          ("a: \x00", "character U+0000 is not allowed")):
        with pytest.raises(ScenarioError, match=re.escape(message)):
            yamlfiles.parse_yaml("f.yaml", text)
