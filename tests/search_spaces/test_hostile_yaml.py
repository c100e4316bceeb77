"""Hostile YAML: a file built to hang, exhaust memory or crash the loader is refused with a
SpaceError (exit 2 from the CLI) in well under a second, and no message echoes a huge value."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from search_spaces import SpaceError, load_space
from search_spaces._loader import SHOWN_CHARACTERS
from search_spaces._yaml_reader import MAX_DEPTH, MAX_FILE_BYTES, MAX_VALUES
from sweep.cli import main

# Each case takes milliseconds of CPU; before, some ran for minutes. CPU time, not the wall
# clock, so that a busy machine does not fail the test; the wall clock still catches a hang.
CPU_SECONDS = 2.0
WALL_SECONDS = 30.0


class _Clock:
    def __enter__(self) -> _Clock:
        self.cpu, self.wall = time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cpu = time.process_time() - self.cpu
        self.wall = time.perf_counter() - self.wall

    def assert_fast(self) -> None:
        assert self.cpu < CPU_SECONDS and self.wall < WALL_SECONDS, (self.cpu, self.wall)


VALID_TAIL = "dataset: {source: iris}\nsearch: {batch_size: [16], lr: [0.01], optimizer: [sgd]}\n"


def _billion_laughs(levels: int = 9) -> str:
    lines = ['l0: &l0 "lol"']
    for level in range(1, levels + 1):
        refs = ", ".join([f"*l{level - 1}"] * 9)
        lines.append(f"l{level}: &l{level} [{refs}]")
    return "\n".join(lines) + "\n"


def _deep_block_mapping(depth: int) -> str:
    return "".join(f"{'  ' * i}k{i}:\n" for i in range(depth)) + f"{'  ' * depth}v\n"


HOSTILE = {
    "billion-laughs": (_billion_laughs(), "aliases"),
    "billion-laughs-under-a-key": (
        VALID_TAIL + "model:\n  kwargs: &k {a: [1, 2]}\n" + _billion_laughs(),
        "aliases",
    ),
    "recursive-alias-list": ("a: &a [1, *a]\n", "recursive alias"),
    "recursive-alias-mapping": ("a: &a {b: {c: *a}}\n", "recursive alias"),
    "nesting-20k-flow": ("x: " + "[" * 20_000 + "]" * 20_000 + "\n", "not valid YAML"),
    "nesting-past-the-bound": (_deep_block_mapping(MAX_DEPTH + 5), f"{MAX_DEPTH} levels"),
    "list-of-200k": (
        "search:\n  batch_size: [" + ", ".join(["1"] * 200_000) + "]\n",  # 600 kB
        f"more than {MAX_VALUES:,} values",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_file_is_refused_fast_with_the_reason(tmp_path: Path, case: str) -> None:
    text, reason = HOSTILE[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(text)
    with _Clock() as clock, pytest.raises(SpaceError) as caught:
        load_space(str(path))
    clock.assert_fast()
    message = str(caught.value)
    assert f"{case}.yaml" in message and reason in message, message
    assert len(message) < 800, message


def test_a_file_over_1_mib_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_text("name: '" + "a" * (MAX_FILE_BYTES + 10) + "'\n")
    with (
        _Clock() as clock,
        pytest.raises(SpaceError, match=r"huge\.yaml: is larger than") as caught,
    ):
        load_space(str(path))
    clock.assert_fast()
    assert "aaaa" not in str(caught.value)


def test_a_huge_value_is_echoed_cut_to_about_200_characters(tmp_path: Path) -> None:
    path = tmp_path / "long.yaml"
    path.write_text(f"name: {'a' * 900_000}\n" + VALID_TAIL)
    with pytest.raises(SpaceError, match=r"long\.yaml: key 'name' must be a study name") as caught:
        load_space(str(path))
    message = str(caught.value)
    assert f"cut at {SHOWN_CHARACTERS} characters" in message
    assert "a" * (SHOWN_CHARACTERS - 1) in message and len(message) < 3 * SHOWN_CHARACTERS + 300


def test_a_space_path_too_long_for_the_system_is_refused_cut() -> None:
    with pytest.raises(SpaceError, match="no such file") as caught:
        load_space("s" * 5000)
    assert len(str(caught.value)) < 800


def test_a_huge_nested_value_is_echoed_cut(tmp_path: Path) -> None:
    path = tmp_path / "nested.yaml"
    hidden = "[" + ", ".join(["[1, 2, 3]"] * 5_000) + "]"
    path.write_text(f"model: {{hidden: {hidden}}}\n" + VALID_TAIL)
    with pytest.raises(SpaceError, match="model.hidden") as caught:
        load_space(str(path))
    assert len(str(caught.value)) < 3 * SHOWN_CHARACTERS + 300


def test_a_long_list_is_checked_for_repeats_in_one_pass(tmp_path: Path) -> None:
    sizes = ", ".join(map(str, range(1, 40_001)))
    path = tmp_path / "repeats.yaml"
    path.write_text(
        f"dataset: {{source: iris}}\nsearch: {{batch_size: [{sizes}, 7], lr: [0.01], "
        "optimizer: [sgd]}\n"
    )
    with _Clock() as clock, pytest.raises(SpaceError, match=r"Remove the repeated 7\."):
        load_space(str(path))
    clock.assert_fast()


@pytest.mark.parametrize(
    ("text", "key", "lines"),
    [
        ("a: 1\nb: 2\na: 3\n", "'a'", "lines 1 and 3"),
        ("cv:\n  folds: 3\n  seed: 1\n  folds: 4\n", "'cv.folds'", "lines 2 and 4"),
        ("x: {a: 1, a: 2}\n", "'x.a'", "lines 1 and 1"),
        ("l:\n  - {k: 1}\n  - {k: 1, k: 2}\n", "'l.k'", "lines 3 and 3"),
    ],
)
def test_a_key_written_twice_is_named_with_both_lines(
    tmp_path: Path, text: str, key: str, lines: str
) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text(text)
    with pytest.raises(SpaceError, match=f"key {key} is written twice \\({lines}\\)"):
        load_space(str(path))


def test_aliases_and_merge_keys_within_the_budget_still_load(tmp_path: Path) -> None:
    path = tmp_path / "aliases.yaml"
    path.write_text(
        "name: aliased\nbase: &cv {folds: 3, seed: 1}\n".replace("base: &cv", "cv: &cv")
        + "dataset: {source: iris}\n"
        + "search: {batch_size: &sizes [16, 32], lr: [0.01], optimizer: [sgd]}\n"
    )
    spec = load_space(str(path))
    assert spec.cv.folds == 3 and spec.search.batch_size == (16, 32)


@pytest.mark.parametrize("case", ["billion-laughs", "recursive-alias-list", "nesting-20k-flow"])
def test_the_cli_exits_2_fast_without_a_traceback(
    workdir: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    path = workdir / f"{case}.yaml"
    path.write_text(HOSTILE[case][0])
    with _Clock() as clock:
        code = main(["run", "--space", str(path)])
    clock.assert_fast()
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("sweep run: error:") and "Traceback" not in err
    assert err.count("\n") == 1
    assert not (workdir / "mlruns").exists()
