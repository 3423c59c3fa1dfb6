"""Config files in sections (data, network, relaxation, method, optimisation, run, compiler), the flat form of
earlier versions still read with a one-line note, `--set section.key=value`, and run folders saved in
sections that every reader of a saved config.yaml understands, as it understands the flat ones saved before."""

import dataclasses

import pytest
import yaml

from dartsnas.conv.config import SearchConfig, TrainConfig, load_config, load_train_config
from dartsnas.core.config import SECTION_NAMES, ConfigError, read_saved, save_config, sectioned
from dartsnas.recurrent.config import RecurrentSearchConfig, RecurrentTrainConfig, load_recurrent_config

KINDS = [SearchConfig, TrainConfig, RecurrentSearchConfig, RecurrentTrainConfig]


@pytest.mark.parametrize("cls", KINDS, ids=lambda c: c.__name__)
def test_every_field_is_in_exactly_one_section(cls):
    fields = [f.name for f in dataclasses.fields(cls)]
    placed = [name for names in cls.SECTIONS.values() for name in names]
    assert sorted(placed) == sorted(fields), (set(fields) ^ set(placed)) or "a field is in two sections"
    assert set(cls.SECTIONS) <= set(SECTION_NAMES)
    assert not set(SECTION_NAMES) & set(fields), "a field takes a section's name"


def _write(path, data):
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_a_file_in_sections_loads_as_its_flat_form(tmp_path):
    sections = {"data": {"dataset": "digits", "subset": 320}, "optimisation": {"lr": 0.1, "epochs": 3}}
    flat = {"dataset": "digits", "subset": 320, "lr": 0.1, "epochs": 3}
    a = load_config(_write(tmp_path / "a.yaml", sections))
    b = load_config(_write(tmp_path / "b.yaml", flat))
    assert a == b and a.lr == 0.1 and a.subset == 320


def test_a_base_in_one_form_and_an_overlay_in_the_other(tmp_path):
    _write(tmp_path / "base.yaml", {"dataset": "digits", "lr": 0.2})
    _write(tmp_path / "top.yaml", {"base": "base.yaml", "optimisation": {"lr": 0.3}})
    config = load_config(tmp_path / "top.yaml")
    assert (config.dataset, config.lr) == ("digits", 0.3)


@pytest.mark.parametrize(
    "data, message",
    [
        ({"optimisation": {"dataset": "digits"}}, "dataset.* belongs to the data section"),
        ({"optimisation": {"lrr": 0.1}}, "did you mean 'lr'"),
        ({"optimisation": 0.1}, "optimisation .* is a section"),
        ({"optimisation": {"lr": 0.1}, "lr": 0.2}, "lr is given twice"),
        ({"optimization": {"lr": 0.1}}, "did you mean 'optimisation'"),
    ],
)
def test_a_misplaced_key_is_one_clear_line(tmp_path, data, message):
    with pytest.raises(ConfigError, match=message) as err:
        load_config(_write(tmp_path / "c.yaml", data))
    assert "\n" not in str(err.value)


def test_set_takes_a_section_and_key_or_the_key_alone():
    assert load_config(None, ["optimisation.lr=0.5"]).lr == 0.5
    assert load_config(None, ["lr=0.5"]).lr == 0.5
    assert load_config(None, ["relaxation.mixed_op=lean"]).mixed_op == "lean"
    with pytest.raises(ConfigError, match="'optimisaton' is not a section; the sections are data, network"):
        load_config(None, ["optimisaton.lr=0.5"])
    with pytest.raises(ConfigError, match="belongs to the optimisation section"):
        load_config(None, ["data.lr=0.5"])
    with pytest.raises(ConfigError, match="is not a section"):
        load_config(None, ["lr.epochs=3"])  # a field is not a section


@pytest.mark.parametrize(
    "cls, load",
    [
        (SearchConfig, lambda p: load_config(p)),
        (TrainConfig, lambda p: load_train_config(p)),
        (RecurrentSearchConfig, lambda p: load_recurrent_config(RecurrentSearchConfig, p)),
        (RecurrentTrainConfig, lambda p: load_recurrent_config(RecurrentTrainConfig, p)),
    ],
    ids=lambda x: getattr(x, "__name__", ""),
)
def test_a_saved_config_is_in_sections_and_loads_back_as_does_a_flat_one(tmp_path, cls, load):
    config = cls()
    save_config(config, tmp_path / "config.yaml")
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert list(saved) == list(cls.SECTIONS)
    assert load(tmp_path / "config.yaml") == config
    assert read_saved(tmp_path / "config.yaml") == config.to_dict()
    # A run folder saved before sections: the flat dict, read by the loader and by read_saved alike.
    _write(tmp_path / "old.yaml", config.to_dict())
    assert load(tmp_path / "old.yaml") == config
    assert read_saved(tmp_path / "old.yaml") == config.to_dict()


def test_sectioned_keeps_every_value_and_the_section_order():
    values = SearchConfig().to_dict()
    out = sectioned(SearchConfig, values)
    assert list(out) == list(SearchConfig.SECTIONS)
    assert {k: v for section in out.values() for k, v in section.items()} == values


@pytest.mark.slow
def test_a_run_folder_is_saved_in_sections_and_resumes(tmp_path, cli_search):
    from dartsnas.cli import main

    run_dir = cli_search(tmp_path, "epochs=1", "plot=false")
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert "optimisation" in saved and "lr" not in saved
    assert main(["genotype", str(run_dir)]) == 0
    assert main(["search", "--resume", str(run_dir)]) == 0
