"""Configuration files that pass their check must run: what a run cannot do is refused by the
check, as one readable line, and no file can exhaust memory or stack."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerts.evaluator import AlertLogic
from alerts.rules import RulesConfig, check
from kpis.ivr_lint import parse

BOMB = "\n".join(
    [f'{c}: &{c} ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]'
     if c == "a" else f"{c}: &{c} [" + ", ".join([f"*{chr(ord(c) - 1)}"] * 9) + "]"
     for c in "abcdefghi"]
)  # fmt: skip


def _nested_menus(levels: int) -> str:
    out = ["flow: deep", "greeting_seconds: 5", "menu:"]
    for i in range(levels):
        pad = "  " * (2 * i + 1)
        out += [f"{pad}id: m{i}", f"{pad}options:", f"{pad}- key: '1'", f"{pad}  menu:"]
    pad = "  " * (2 * levels + 1)
    out += [f"{pad}id: leaf", f"{pad}options:", f"{pad}- key: '1'", f"{pad}  action: agent"]
    return "\n".join(out) + "\n"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (BOMB, "anchors and aliases are not allowed"),
        (_nested_menus(300), "nested deeper"),
        ("!!python/object/apply:os.system ['echo no']\n", "not a plain YAML document"),
        ("a: " + "[" * 20000, "nested deeper"),
    ],
)
@pytest.mark.slow
def test_hostile_ivr_flows_are_refused(text: str, why: str) -> None:
    assert len(text) < 2_000_000
    with pytest.raises(ValueError, match=why):
        parse(text, "flow.yaml")


def test_a_flow_with_its_menus_still_parses() -> None:
    assert parse(_nested_menus(3), "flow.yaml").flow == "deep"


@pytest.mark.parametrize(
    ("toml", "why"),
    [
        ('[rules.abandonment_high]\nsummary = "{value:d}"\n', "formats are like"),
        ('[rules.abandonment_high]\nsummary = "{0} {"\n', "not a template"),
        ('[rules.abandonment_high]\nsummary = "{value:>500000000}"\n', "formats are like"),
        ('[rules.abandonment_high]\nsummary = "{value.__class__.__mro__}"\n', "named fields"),
        ('[rules.abandonment_high]\nsummary = "{queue:.1f}"\n', "only {value} takes"),
        ("[rules.callbacks_breaching]\nthreshold = 1e309\n", "finite"),
        ("evaluation_interval_seconds = 0.01\n", "greater than or equal to 1"),
        ("a = " + "[" * 100_000 + "]" * 100_000 + "\n", "nested deeper"),
    ],
)
def test_rules_check_refuses_what_a_run_cannot_do(tmp_path: Path, toml: str, why: str) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(toml)
    problems = check(path)
    assert len(problems) == 1 and why in problems[0], problems


def test_rules_files_that_are_no_text_and_good_templates(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_bytes(b"evaluation_interval_seconds = '\xff'\n")
    assert check(path) == [f"{path}: not UTF-8 at byte 31"]
    path.write_text('[rules.abandonment_high]\nsummary = "Abandonment {value:.1%} in {queue}"\n')
    assert check(path) == []
    rules = RulesConfig.load(path)
    assert AlertLogic(rules, _Sink()).series  # loads and builds


class _Sink:
    def alert(self, event: object) -> None:
        return None


def _leaves(model: object, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], object]]:
    from pydantic import BaseModel

    out: list[tuple[tuple[str, ...], object]] = []
    for name in type(model).model_fields:  # type: ignore[attr-defined]
        v = getattr(model, name)
        if isinstance(v, BaseModel):
            out += _leaves(v, (*prefix, name))
        else:
            out.append(((*prefix, name), v))
    return out


def test_every_setting_reads_from_the_environment_as_its_type(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each scalar setting, given in the environment as the text of its default (the way an
    operator writes it), loads and equals that default: CC_MONITOR_ENGINE__INTERVAL_MINUTES=15
    was once refused ("Input should be 0, 15 or 30 (got '15')")."""
    from datetime import datetime

    from pydantic import SecretStr

    from cc_monitor.settings import Settings, load_settings

    leaves = _leaves(Settings())
    assert len(leaves) > 50
    tried = 0
    for path, value in leaves:
        if value is None or isinstance(value, tuple | list | dict | SecretStr):
            continue  # no text form of a default to give (tables have their own tests)
        text = (str(value).lower() if isinstance(value, bool)
                else value.isoformat() if isinstance(value, datetime) else str(value))  # fmt: skip
        key = "CC_MONITOR_" + "__".join(p.upper() for p in path)
        with monkeypatch.context() as m:
            m.setenv(key, text)
            got: object = load_settings()
            for p in path:
                got = getattr(got, p)
        assert got == value, key
        tried += 1
    assert tried > 50
    with monkeypatch.context() as m:
        m.setenv("CC_MONITOR_ENGINE__INTERVAL_MINUTES", "15")
        assert load_settings().engine.interval_minutes == 15
        m.setenv("CC_MONITOR_ENGINE__INTERVAL_MINUTES", "20")
        from cc_monitor.settings import SettingsError

        with pytest.raises(SettingsError, match=r"interval_minutes.*0, 15, 30"):
            load_settings()


@pytest.mark.unit
def test_ivr_flow_files_name_their_flows_and_menus_and_bad_ones_are_one_line(
    tmp_path: Path,
) -> None:
    from cc_monitor.settings import SettingsError, load_settings

    root = Path(__file__).resolve().parent.parent
    good = tmp_path / "cc.toml"
    good.write_text(f'ivr_flow_files = ["{root / "deploy/ivr/main.yaml"}"]\n')
    (flow,) = load_settings(good).engine.label_caps.ivr_flows
    assert flow.flow == "main" and flow.tenant is None
    assert flow.menus[0] == "main" and len(set(flow.menus)) == len(flow.menus) > 3
    long_id = "flow: f\ngreeting_seconds: 1\nmenu:\n  id: " + "x" * 300 + "\n  options:\n" \
        "  - {key: '1', action: agent}\n"  # fmt: skip
    cases = {"missing.yaml": None, "bomb.yaml": BOMB, "long.yaml": long_id,
             "bytes.yaml": "\udcff"}  # fmt: skip
    for name, text in cases.items():
        path = tmp_path / name
        if text is not None:
            path.write_bytes(text.encode("utf-8", "surrogateescape"))
        cfg = tmp_path / f"{name}.toml"
        cfg.write_text(f'ivr_flow_files = ["{path}"]\n')
        with pytest.raises(SettingsError) as err:
            load_settings(cfg)
        message = str(err.value)
        assert "\n" not in message and "ivr_flow_files" in message and name in message, message
