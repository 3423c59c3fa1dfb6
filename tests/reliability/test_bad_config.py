"""Nothing let in: every bad config or command-line input ends in one clear line on stderr, exit status 2, no
traceback, and no file made or changed (the run folder included). The bad inputs are generated: every
numeric field of the four config dataclasses times its bad values (out of its range, not finite, the wrong
type), then the hand-written findings (names that are paths, unusable --out folders and --config files,
YAML that is not a mapping of keys, misleading messages). No search runs and no dataset is read: every one
of them must be caught while the command line and the config are read.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import types
import typing
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from dartsnas.cli import main
from dartsnas.conv.config import TRAIN_CONFIG_DIR, SearchConfig, TrainConfig
from dartsnas.core.config import (
    CONFIG_DIR,
    MAX_CONFIG_BYTES,
    MAX_INT,
    MAX_SET_CHARS,
    ConfigError,
    check_ranges,
    load_dataclass,
    save_config,
)
from dartsnas.core.options import RunOptions
from dartsnas.recurrent.config import RNN_CONFIG_DIR, RecurrentSearchConfig, RecurrentTrainConfig

# Each config dataclass, the command line that loads it (and nothing else: --out is added), and its shipped configs.
SIDES = {
    "search": (SearchConfig, ["search"], CONFIG_DIR),
    "train": (TrainConfig, ["train", "DARTS_V2"], TRAIN_CONFIG_DIR),
    "rnn-search": (RecurrentSearchConfig, ["search", "--task", "ptb"], RNN_CONFIG_DIR),
    "rnn-train": (RecurrentTrainConfig, ["train", "--task", "ptb", "DARTS_RNN"], RNN_CONFIG_DIR / "train"),
}
# The run options (core/options.py) check themselves in __post_init__, not through RANGES: their intervals here.
RUN_OPTION_RANGES = {
    "checkpoint_minutes": "(0, inf)",
    "checkpoint_steps": "[1, inf)",
    "keep_checkpoints": "[1, inf)",
    "nonfinite_patience": "[1, inf)",
}


# ---------------------------------------------------------------------------------------------------
# What a field is: its kind and interval


@functools.cache
def hints(cls) -> dict:
    """The field types of a config class (typing.get_type_hints, read once: it compiles every annotation)."""
    return typing.get_type_hints(cls)


def kind_of(cls, name: str) -> str | None:
    """int, float, floats (a list of them), or None for a field that is not a number."""
    hint = hints(cls)[name]
    args = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    for arg in args:
        if arg is int:
            return "int"
        if arg is float:
            return "float"
        if typing.get_origin(arg) is list and typing.get_args(arg) == (float,):
            return "floats"
    return None


def numeric_fields(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if kind_of(cls, f.name)]


def interval(cls, name: str) -> tuple[str, float, float, str] | None:
    spec = cls.RANGES.get(name) or RUN_OPTION_RANGES.get(name)
    if spec is None:
        return None
    left, rest = spec[0], spec[1:-1]
    low, high = (float(x) for x in rest.split(","))
    return left, low, high, spec[-1]


def inside(value, bounds) -> bool:
    """The test's own reading of an interval (not core.config's): finite, within the bounds."""
    left, low, high, right = bounds
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return False
    return (value > low if left == "(" else value >= low) and (value < high if right == ")" else value <= high)


def bad_values(cls, name: str) -> list[str]:
    """`--set` texts that must be refused for this field: out of its interval, not finite, the wrong type."""
    kind, bounds = kind_of(cls, name), interval(cls, name)
    left, low, high, right = bounds
    if kind == "int":
        below = int(low) - (left == "[")
        values = [str(below), "2.5", "true", "abc", "[1]", "{a: 1}"]
        if name in cls.RANGES:  # the table caps whole numbers; the run options do not
            values.append(str(MAX_INT + 1))
        return values
    below = low - 0.5 if left == "[" else low
    above = [] if math.isinf(high) else [str(high + 0.5 if right == "]" else high)]
    if kind == "float":
        return [str(below), *above, "nan", ".nan", ".inf", "-.inf", "1e999", "true", "abc", "[0.5]", "{a: 1}"]
    good = 0.5  # inside every list field's interval
    return [
        f"[{below}, {good}]",
        *(f"[{a}, {good}]" for a in above),
        f"[.inf, {good}]",
        f"[.nan, {good}]",
        "[a, b]",
        "[true, 0.5]",
        "[[1], 0.5]",
        str(good),
        "{a: 1}",
    ]


def field_cases() -> list[tuple[str, str, str, str]]:
    """(kind, side, field, value): every numeric field of every side times each of its bad values."""
    cases = []
    for side, (cls, _, _) in SIDES.items():
        for name in numeric_fields(cls):
            if interval(cls, name) is None:
                continue  # test_every_numeric_field_has_a_range says why it must not happen
            cases += [(kind_of(cls, name), side, name, value) for value in bad_values(cls, name)]
    return cases


FIELD_CASES = field_cases()
KINDS = ("int", "float", "floats")


# ---------------------------------------------------------------------------------------------------
# The one check every bad input gets


def digest(root: Path) -> dict[str, str]:
    """Every path under root with a digest of its content: a listing to compare before and after."""
    return {
        str(p.relative_to(root)): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
    }


@pytest.fixture
def refusal(monkeypatch, capsys):
    """refusal(folder, argv, *needles): run in `folder` (made, with an empty out/), main(argv) exits 2 with one
    line `dartsnas <command>: error: ...` that holds every needle, without a traceback, and nothing under
    folder (the cwd too) was made or changed."""

    def check(folder: Path, argv: list[str], *needles: str) -> str:
        if not (folder / "out").is_dir():  # made at setup for a test that then makes mkdir fail
            (folder / "out").mkdir(parents=True)
        monkeypatch.chdir(folder)  # a relative path the command wrote to would show in the digest
        capsys.readouterr()  # what an earlier case printed is not this one's
        before = digest(folder)
        status = main(argv)
        err = capsys.readouterr().err
        lines = err.splitlines()
        assert status == 2, err
        assert len(lines) == 1, err
        assert lines[0].startswith(f"dartsnas {argv[0]}: error: "), err
        assert "Traceback" not in err
        for needle in needles:
            assert needle in lines[0], (needle, lines[0])
        assert digest(folder) == before, "a refused command made or changed files"
        return lines[0]

    return check


@pytest.fixture
def refused(refusal, tmp_path):
    """refused(argv, *needles): refusal in tmp_path, for a test of one input."""
    (tmp_path / "out").mkdir()
    return lambda argv, *needles: refusal(tmp_path, argv, *needles)


def run_args(side: str, tmp_path: Path, *extra: str) -> list[str]:
    return [*SIDES[side][1], "--out", str(tmp_path / "out"), *extra]


# ---------------------------------------------------------------------------------------------------
# Every numeric field x its bad values, through the command line


def test_there_are_enough_generated_cases():
    assert len(FIELD_CASES) >= 150
    assert {kind for kind, *_ in FIELD_CASES} == set(KINDS)  # every case is in one table below


@pytest.mark.parametrize("kind", KINDS)
def test_a_bad_number_is_refused(every_case, refusal, new_folder, kind):
    """Each bad value of each numeric field of this kind (every side), refused naming the field."""

    def check(case):
        side, name, value = case
        folder = new_folder()
        refusal(folder, run_args(side, folder, "--set", f"{name}={value}"), name)

    table = [(f"{side}-{name}={value}", (side, name, value)) for k, side, name, value in FIELD_CASES if k == kind]
    every_case(table, check)


@pytest.mark.parametrize("side", SIDES)
def test_every_numeric_field_has_a_range(side):
    cls = SIDES[side][0]
    own = {f.name for f in dataclasses.fields(RunOptions)}  # they check themselves (RunOptions.__post_init__)
    missing = [n for n in numeric_fields(cls) if n not in cls.RANGES and n not in own]
    assert not missing, f"{cls.__name__}: numeric fields without a range in RANGES: {missing}"
    names = {f.name for f in dataclasses.fields(cls)}
    assert set(cls.RANGES) <= names, f"RANGES names no such field: {set(cls.RANGES) - names}"


@pytest.mark.parametrize("side", SIDES)
def test_every_shipped_config_is_in_range(side):
    cls, _, folder = SIDES[side]
    shipped = sorted(folder.glob("*.yaml"))
    assert shipped
    for path in shipped:
        config = load_dataclass(cls, path)
        check_ranges(config)
        for name in cls.RANGES:
            value = getattr(config, name)
            items = value if isinstance(value, list) else [value]
            assert value is None or all(inside(v, interval(cls, name)) for v in items), (path.name, name, value)


@pytest.mark.parametrize("side", SIDES)
def test_the_defaults_are_in_range(side):
    cls = SIDES[side][0]
    check_ranges(cls())


@pytest.mark.parametrize(
    "override, message",
    [
        ("grad_clip=-1", "grad_clip must be a finite number > 0, got -1.0"),  # gradient ascent, before
        ("lr=-0.1", "lr must be a finite number > 0, got -0.1"),
        ("lr=nan", "lr must be a finite number > 0, got nan"),
        ("lr=inf", "lr must be a finite number > 0, got inf"),
        ("subset=-5", "subset must be at least 1, got -5"),
        ("momentum=1", "momentum must be a finite number in [0, 1), got 1.0"),
        ("epochs=99999999999", f"epochs must be at most {MAX_INT}, got 99999999999"),
        ("arch_betas=[0.5, 1]", "arch_betas must be a list of finite numbers in [0, 1), got [0.5, 1.0]"),
    ],
)
def test_range_messages_read_clearly(refused, tmp_path, override, message):
    assert refused(run_args("search", tmp_path, "--set", override)) == f"dartsnas search: error: {message}"


# ---------------------------------------------------------------------------------------------------
# Finding 1: a name that is a path


BAD_NAMES = [
    "../../escape",
    "/some/abs/path",
    "",
    ".",
    "..",
    "a/b",
    "a/../../b",
    "-x",
    ".hidden",
    "x" * 101,
    "a b",
    "a\\b",
    "a\x00b",
    "run\n2",
]


@pytest.mark.parametrize("side", SIDES)
def test_a_run_name_that_is_not_a_plain_name_is_refused(every_case, refusal, new_folder, side):
    def check(name):
        folder = new_folder()
        refusal(folder, run_args(side, folder, f"--name={name}"), "--name", "not a valid name")

    every_case([(repr(name), name) for name in BAD_NAMES], check)


def test_a_derive_name_that_is_not_a_plain_name_is_refused(every_case, refusal, new_folder):
    # Checked before the run folder is read: no search is needed to be refused.
    def check(name):
        folder = new_folder()
        argv = ["derive", str(folder / "out"), "--rule", "argmax", f"--name={name}"]
        refusal(folder, argv, "--name", "not a valid name")

    every_case([(repr(name), name) for name in BAD_NAMES], check)


def test_new_run_dir_refuses_a_name_with_a_separator(tmp_path):
    from dartsnas.core.runs import new_run_dir

    for name in ("../escape", "/abs", "a/b", ""):
        with pytest.raises(ConfigError, match="not one folder name"):
            new_run_dir(tmp_path, name)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------------
# Finding 2: an --out that cannot hold a run folder


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("where", ["file", "under-file"])
def test_an_out_that_is_a_file_is_refused(refused, tmp_path, side, where):
    (tmp_path / "a-file").write_text("not a folder\n")
    out = tmp_path / "a-file" / ("sub" if where == "under-file" else "")
    refused([*SIDES[side][1], "--out", str(out)], "--out", "Not a directory", "give --out a folder")


@pytest.mark.parametrize("side", SIDES)
def test_an_unwritable_out_is_refused(refused, tmp_path, monkeypatch, side):
    def denied(self, *args, **kwargs):  # the tests run as root, to whom every folder is writable
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", denied)
    refused(run_args(side, tmp_path), "--out", "Permission denied", "give --out a folder")


@pytest.mark.parametrize("bench, config", [("quality", "nb201-quick"), ("skips", "quick")])
@pytest.mark.parametrize("where", ["file", "under-file"])
def test_a_bench_out_that_is_a_file_is_refused(refused, tmp_path, bench, config, where):
    (tmp_path / "a-file").write_text("not a folder\n")
    out = tmp_path / "a-file" / ("sub" if where == "under-file" else "")
    refused(["bench", bench, "--config", config, "--seeds", "1", "--out", str(out)], "--out", "give --out a folder")


# ---------------------------------------------------------------------------------------------------
# Findings 3, 4 and 7: --config files that are no config


CONFIG_FILES = {  # file content -> a piece of the message
    "folder": (None, "is a folder"),
    "too-big": (b"# padding\n" * (MAX_CONFIG_BYTES // 10 + 1), "larger than 1024 KiB"),
    "not-utf8": (b"epochs: \xff\xfe3\n", "not UTF-8"),
    "binary-junk": (bytes(range(256)) * 4, "not UTF-8"),
    "nul-byte": (b"epochs: 3\x00\n", "unacceptable character"),
    "list": (b"- epochs\n- 3\n", "must hold a mapping of config keys, got list"),
    "scalar": (b"42\n", "must hold a mapping of config keys, got int"),
    "string": (b"just some words\n", "must hold a mapping of config keys, got str"),
    "python-tag": (b'epochs: !!python/object/apply:os.system ["touch pwned"]\n', "could not determine a constructor"),
    "python-tag-whole": (b'!!python/object/apply:os.system ["touch pwned"]\n', "could not determine a constructor"),
    "python-name": (b"epochs: !!python/name:os.system\n", "could not determine a constructor"),
    "unclosed": (b"epochs: [1, 2\n", "not valid YAML"),
    "bad-indent": (b"epochs: 3\n  lr: 0.1\n: :\n", "not valid YAML"),
    "tab-indent": (b"a:\n\t- 1\n", "not valid YAML"),
    "unknown-key": (b"epochz: 3\n", "unknown config key 'epochz'"),
    "number-key": (b"1: 3\n", "unknown config key '1'"),
    "nested-where-a-number-is": (b"epochs: {a: 1}\n", "epochs must be int"),
    "string-for-int": (b"epochs: '3'\n", "epochs must be int"),
    "list-for-float": (b"lr: [0.1]\n", "lr must be float"),
    "bool-for-int": (b"batch_size: true\n", "batch_size must be int"),
    "huge-int": (b"epochs: " + b"9" * 5000 + b"\n", "not valid YAML"),
    "bad-date": (b"data_dir: 2001-13-45\n", "not valid YAML"),
    "deep-nesting": (b"data_dir: " + b"[" * 1000 + b"\n", "not valid YAML"),
}


@pytest.mark.parametrize("side", SIDES)
def test_a_config_file_that_is_no_config_is_refused(every_case, refusal, new_folder, side):
    def check(case):
        content, needle = CONFIG_FILES[case]
        folder = new_folder()
        path = folder / f"{case}.yaml"
        if content is None:
            path.mkdir()
        else:
            path.write_bytes(content)
        line = refusal(folder, run_args(side, folder, "--config", str(path)), needle)
        assert str(path) in line or " must be " in line  # the file, or the key whose value is wrong
        assert not (folder / "pwned").exists()

    every_case([(case, case) for case in CONFIG_FILES], check)


def test_an_empty_config_file_gives_the_defaults(tmp_path):
    # Documented (tests/test_config.py): a file of comments, or nothing, sets nothing.
    for text in ("", "# nothing\n", "\n\n"):
        (tmp_path / "empty.yaml").write_text(text)
        assert load_dataclass(SearchConfig, tmp_path / "empty.yaml") == SearchConfig()


@pytest.mark.parametrize("side", SIDES)
def test_a_too_long_set_is_refused(refused, tmp_path, side):
    refused(run_args(side, tmp_path, "--set", "data_dir=" + "x" * MAX_SET_CHARS), "--set", "longer than")


# ---------------------------------------------------------------------------------------------------
# Finding 7: --set values of the wrong shape, unknown keys


SET_CASES = [  # (side, --set item, needle)
    ("search", "epochz=3", "did you mean 'epochs'"),
    ("search", "=3", "unknown config key ''"),
    ("search", "epochs", "key=value"),
    ("search", "dataset={a: 1}", "dataset must be str"),
    ("search", "dataset=[cifar10]", "dataset must be str"),
    ("search", "dataset=nope", "dataset: unknown 'nope'"),
    ("search", "ops={a: 1}", "ops must be list"),
    ("search", "ops=[[sep_conv_3x3]]", "ops must be a list of names"),
    ("search", "ops=[1, 2]", "ops must be a list of names"),
    ("search", "data_options=[1]", "data_options must be dict"),
    ("search", "data_options={size: 0}", "data_options: size must be a whole number >= 1"),
    ("search", "data_options={size: -3}", "data_options: size"),
    ("search", "data_options={size: abc}", "data_options: size"),
    ("search", "data_options={size: true}", "data_options: size"),
    ("search", "data_options={limit_per_class: 0}", "data_options: limit_per_class"),
    ("search", "data_options={shape: [3, 0, 8]}", "data_options: shape"),
    ("search", "data_options={num_classes: 0}", "data_options: num_classes"),
    ("search", "data_options={grayscale: 1}", "data_options: grayscale"),
    ("search", "data_options={sise: 16}", "unknown option 'sise'"),
    ("search", "unrolled=1", "unrolled must be bool"),
    ("search", "unrolled={a: 1}", "unrolled must be bool"),
    ("search", "epochs=!!python/object/apply:os.system [x]", "epochs must be int"),
    ("search", "device=cuda:x", "device 'cuda:x' is not a device"),
    ("train", "net=resnet", "net: unknown layout"),
    ("train", "data_options={size: 0}", "data_options: size"),
    ("train", "lr_schedule=[cosine]", "lr_schedule must be str"),
    ("rnn-search", "max_lines={train: 0}", "max_lines"),
    ("rnn-search", "max_lines={1: 2, train: 3}", "max_lines"),
    ("rnn-search", "ops=[[tanh]]", "ops must be a list of names"),
    ("rnn-train", "corpus={a: 1}", "corpus must be str"),
    ("rnn-train", "max_lines=[1]", "max_lines must be dict"),
]


def test_a_bad_set_is_refused(every_case, refusal, new_folder):
    def check(case):
        side, item, needle = case
        folder = new_folder()
        refusal(folder, run_args(side, folder, "--set", item), needle)

    every_case([(f"{side}-{item}", (side, item, needle)) for side, item, needle in SET_CASES], check)


# ---------------------------------------------------------------------------------------------------
# Finding 6: messages that misled


def fake_run(folder: Path, config, genotype: bool = True) -> Path:
    folder.mkdir()
    save_config(config, folder / "config.yaml")
    if genotype:
        (folder / "genotype.json").write_text("{}\n")
    return folder


@pytest.mark.parametrize(
    "command, config, other",
    [
        ("train", SearchConfig(), "search"),
        ("search", TrainConfig(), "train"),
        ("train", RecurrentSearchConfig(), "search"),
        ("search", RecurrentTrainConfig(), "train"),
    ],
)
def test_resuming_the_other_kind_of_run_says_which_command_resumes_it(refused, tmp_path, command, config, other):
    run = fake_run(tmp_path / "run", config)
    line = refused([command, "--resume", str(run)], f"is a {other} run folder", f"dartsnas {other} --resume {run}")
    assert "train_portion" not in line and "unknown config key" not in line


def test_imagefolder_without_data_dir_names_data_dir():
    from dartsnas.data.images import load_images
    from dartsnas.data.download import DataError

    with pytest.raises(DataError) as err:
        load_images("imagefolder", "train")
    assert "data_dir" in str(err.value) and "root=<" not in str(err.value)


# ---------------------------------------------------------------------------------------------------
# Property: load_dataclass gives a config of the declared types, in range, or a ConfigError; nothing else


JUNK_KEYS = ["", "epoch", "LR", "lr ", "ranges", "RANGES", "__class__", "validate", "a.b", "ops[0]", "\u00e9", "-"]
WORDS = [
    "nan",
    ".nan",
    "NaN",
    "inf",
    ".inf",
    "-.inf",
    "1e999",
    "-1e999",
    "true",
    "false",
    "null",
    "~",
    "yes",
    "[]",
    "{}",
    "abc",
    "''",
    '""',
    "0x1f",
    "1_000",
    "0o17",
    "1:30",
    "2001-12-14",
    "!!binary aGk=",
    "[a, b]",
    "{a: {b: c}}",
    "*x",
    "&x 1",
    "!!python/name:os.system",
    "- 1",
    "a: b",
    "cifar10",
    "exact",
    "sample",
    "[none, skip_connect]",
    "[0.5, 0.999]",
    "[1, 1]",
    "[10, 0.1]",
    "{size: 0}",
    "{size: 16}",
    "cpu",
    "auto",
]


def scalars():
    return st.one_of(
        st.integers(min_value=-(10**30), max_value=10**30).map(str),
        st.integers(min_value=-3, max_value=40).map(str),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.floats(min_value=-2, max_value=2).map(repr),
        st.sampled_from(WORDS),
        st.text(max_size=12),
    )


def values():
    items = scalars()
    return st.one_of(
        items,
        st.lists(items, max_size=4).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.dictionaries(st.sampled_from(["size", "a", "train", "valid", "1"]), items, max_size=3).map(
            lambda d: "{" + ", ".join(f"{k}: {v}" for k, v in d.items()) + "}"
        ),
    )


def plausible_value(cls, name: str):
    """A `--set` value that should load: a number inside the field's interval, or the field's default."""
    kind, bounds = kind_of(cls, name), interval(cls, name)
    if kind == "int" and bounds:
        low = int(bounds[1]) + (bounds[0] == "(")
        return st.integers(low, low + 100).map(str)
    if kind == "float" and bounds:
        left, low, high, right = bounds
        high, exclude_max = (low + 10, False) if math.isinf(high) else (high, right == ")")
        numbers = st.floats(low, high, exclude_min=left == "(", exclude_max=exclude_max)
        return numbers.map(lambda x: f"{x:.6e}")  # a dot: YAML 1.1 reads 1e-05 as text, 1.000000e-05 as a number
    return st.just(json.dumps(getattr(cls(), name)))  # JSON is YAML


def overrides(cls):
    """1 to 4 `--set` items: junk (any key, any value), or plausible (a field, a value that should load), half
    and half, so that a real share of the draws reach a config to check."""
    keys = st.one_of(
        st.sampled_from([f.name for f in dataclasses.fields(cls)]), st.sampled_from(JUNK_KEYS), st.text(max_size=8)
    )
    junk = st.tuples(keys, values()).map(lambda kv: f"{kv[0]}={kv[1]}")
    plausible = plausible_items(cls).map(lambda kv: f"{kv[0]}={kv[1]}")
    return st.one_of(st.lists(junk, min_size=1, max_size=4), st.lists(plausible, min_size=1, max_size=4))


def plausible_items(cls):
    """(field, value) with a value that should load."""
    names = [f.name for f in dataclasses.fields(cls)]
    return st.sampled_from(names).flatmap(lambda n: plausible_value(cls, n).map(lambda v: (n, v)))


def has_declared_type(cls, name: str, value) -> bool:
    hint = hints(cls)[name]
    args = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    for arg in args:
        base = typing.get_origin(arg) or arg
        if arg is type(None) and value is None:
            return True
        if base is bool and isinstance(value, bool):
            return True
        if base in (int, float) and type(value) is base:
            return True
        if base in (str, dict) and isinstance(value, base):
            return True
        if base is list and isinstance(value, list):
            item = typing.get_args(arg)[0]
            return all(type(v) is item for v in value)
    return False


def check_property(cls, items: list[str]) -> str:
    """Returns "loaded" for a config that loaded (and passed the checks), "refused" for a ConfigError."""
    try:
        config = load_dataclass(cls, None, items)
    except ConfigError:
        return "refused"
    for f in dataclasses.fields(cls):
        value = getattr(config, f.name)
        assert has_declared_type(cls, f.name, value), (f.name, value, items)
        bounds = interval(cls, f.name)
        if bounds is not None and value is not None:
            seq = value if isinstance(value, list) else [value]
            assert all(inside(v, bounds) for v in seq), (f.name, value, items)
    return "loaded"


@pytest.mark.parametrize(
    "cls, draws", [(SearchConfig, 200), (TrainConfig, 200), (RecurrentSearchConfig, 100), (RecurrentTrainConfig, 100)]
)
def test_overrides_give_a_valid_config_or_a_config_error(tally, cls, draws):
    @settings(max_examples=draws, deadline=None)
    @given(items=overrides(cls))
    def run(items):
        tally.record(items, check_property(cls, items))

    run()
    tally.check("loaded", at_least=0.15)  # a third to a half load; before plausible items, 1 draw in 20 to 40 did


def test_any_config_file_gives_a_valid_config_or_a_config_error(tmp_path_factory, tally):
    folder = tmp_path_factory.mktemp("files")
    lines = lambda kvs: "".join(f"{k}: {v}\n" for k, v in kvs)  # noqa: E731

    @settings(max_examples=100, deadline=None)
    @given(
        text=st.one_of(
            st.text(max_size=200),
            st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
            st.lists(
                st.tuples(st.sampled_from(["epochs", "lr", "ops", "data_options", "x"]), values()), max_size=4
            ).map(lines),
            st.lists(plausible_items(SearchConfig), min_size=1, max_size=4).map(lines),
        )
    )
    def run(text):
        path = folder / "c.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogateescape")
        try:
            config = load_dataclass(SearchConfig, path)
        except ConfigError as err:
            assert "\n" not in str(err)  # one line on the terminal
            tally.record(text, "refused")
            return
        assert isinstance(config, SearchConfig)
        yaml.safe_dump(config.to_dict())  # and it can be saved as a run's config.yaml
        tally.record(text, "loaded")

    run()
    tally.check("loaded", at_least=0.1)  # about a quarter; before the plausible lines, 1 draw in 20
