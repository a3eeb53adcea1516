"""The agent directory (streams.directory): display names by pseudonym or by the source's id,
and every bad file refused whole with its place and reason, never a crash or half a directory."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.directory import MAX_NAME, DirectoryError, load_directory
from streams.inputs.privacy import Pseudonymizer

pytestmark = pytest.mark.unit
KEY = Pseudonymizer("k")


def write(tmp_path: Path, name: str, data: str | bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data.encode() if isinstance(data, str) else data)
    return p


def test_csv_and_json_by_pseudonym_or_source_id(tmp_path: Path) -> None:
    csv = write(tmp_path, "a.csv", "\ufeffagent,source_id,name,team\n"
                "p-0123456789abcdef0123,,Kim Minji,A\n,billing-a003,  이서준 ,B\n")  # fmt: skip
    assert load_directory(csv, KEY) == {"p-0123456789abcdef0123": "Kim Minji",
                                        KEY("billing-a003"): "이서준"}  # fmt: skip
    js = write(tmp_path, "a.json", orjson.dumps([{"source_id": "billing-a003", "name": "이서준"},
                                                 {"agent": "p-1", "name": "Lee"}]))  # fmt: skip
    assert load_directory(js, KEY) == {KEY("billing-a003"): "이서준", "p-1": "Lee"}
    # the raw id is not kept anywhere in what is loaded
    assert "billing-a003" not in repr(load_directory(js, KEY))


@pytest.mark.parametrize(
    ("name", "data", "why"),
    [
        ("x.csv", "id,name\n1,a\n", "line 1: the header needs"),
        ("x.csv", "agent,name\np-1,a\np-1,b\n", "line 3: the agent has another name"),
        ("x.csv", "agent,source_id,name\np-1,s,a\n", "line 2: one of `agent` or `source_id`"),
        ("x.csv", "agent,name\n,a\n", "line 2: one of"),
        ("x.csv", "agent,name\np-1,\n", "line 2: no name"),
        ("x.csv", "agent,name\np-1,a,extra\n", "line 2: more fields"),
        ("x.csv", 'agent,name\np-1,"a\x07b"\n', "at most 80 printable"),
        ("x.csv", 'agent,name\np-1,"two\nlines"\n', "at most 80 printable"),
        ("x.csv", "agent,name\np-1," + "n" * (MAX_NAME + 1) + "\n", "at most 80"),
        ("x.csv", "agent,name\n" + "p" * 201 + ",a\n", "1-200 characters"),
        ("x.csv", b"agent,name\np-1,\xff\n", "not UTF-8"),
        ("x.json", "{}", "a JSON list"),
        ("x.json", "[1]", "item 1: not an object"),
        ("x.json", '[{"agent": 5, "name": "a"}]', "item 1: the agent id is not a text"),
        ("x.json", '[{"agent": "p-1", "name": ["a"]}]', "item 1: no name"),
        ("x.json", "[{", "not JSON"),
    ],
)
def test_a_bad_file_is_refused_with_its_place(
    tmp_path: Path, name: str, data: str | bytes, why: str
) -> None:
    path = write(tmp_path, name, data)
    with pytest.raises(DirectoryError) as e:
        load_directory(path, KEY)
    assert str(e.value).startswith(str(path)) and why in str(e.value), str(e.value)
    assert "\n" not in str(e.value)


def test_a_missing_or_huge_file(tmp_path: Path) -> None:
    with pytest.raises(DirectoryError, match="cannot read it"):
        load_directory(tmp_path / "none.csv", KEY)
    big = tmp_path / "big.csv"
    with big.open("wb") as f:
        f.truncate(10 * 1024 * 1024 + 1)
    with pytest.raises(DirectoryError, match="more than the"):
        load_directory(big, KEY)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.booleans())
def test_any_bytes_load_or_are_refused_cleanly(tmp_path_factory: pytest.TempPathFactory,
                                               data: bytes, as_json: bool) -> None:  # fmt: skip
    path = tmp_path_factory.mktemp("d") / ("f.json" if as_json else "f.csv")
    path.write_bytes(b"agent,name\n" + data if not as_json else data)
    try:
        names = load_directory(path, KEY)
    except DirectoryError as e:
        assert "\n" not in str(e)
        return
    for agent, name in names.items():
        assert agent and name and len(name) <= MAX_NAME and name.isprintable()
