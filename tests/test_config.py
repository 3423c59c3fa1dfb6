"""Behavioural tests of config.py: every shipped YAML loads, the defaults are the paper's, overrides are
typed and checked, user mistakes end in a ConfigError that names the key or file, and YAML loading is safe."""

import dataclasses
import os
from pathlib import Path

import pytest

from dartsnas.conv.config import SearchConfig, load_config
from dartsnas.core.config import CONFIG_DIR, ConfigError, save_config

SHIPPED = sorted(CONFIG_DIR.glob("*.yaml"))

PAPER_OPS = [
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
]


def write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ---------------------------------------------------------------------------------------------------
# Shipped configs and defaults


def test_configs_are_shipped():
    assert SHIPPED, f"no YAML in {CONFIG_DIR}"


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_config_loads_and_validates(path):
    config = load_config(path)
    assert isinstance(config, SearchConfig)
    assert config.validate() is config
    assert load_config(path.stem) == config  # by shipped name, without a path
    assert load_config(str(path)) == config


def test_shipped_cifar10_is_the_paper_search():
    assert load_config("cifar10") == SearchConfig()
    assert load_config("cifar10-second-order").unrolled is True


def test_unknown_shipped_name_lists_the_shipped_ones():
    with pytest.raises(ConfigError, match="cifar10") as err:
        load_config("cifar100-nonexistent")
    assert "cifar100-nonexistent" in str(err.value)


def test_defaults_are_the_papers():
    c = load_config()
    assert c == SearchConfig()
    expected = dict(
        epochs=50,
        batch_size=64,
        lr=0.025,
        lr_min=0.001,
        momentum=0.9,
        weight_decay=3e-4,
        grad_clip=5.0,
        arch_lr=3e-4,
        arch_betas=[0.5, 0.999],
        arch_weight_decay=1e-3,
        train_portion=0.5,
        init_channels=16,
        layers=8,
        nodes=4,
        stem_multiplier=3,
        ops=PAPER_OPS,
        unrolled=False,
        cutout=False,
    )
    assert {k: getattr(c, k) for k in expected} == expected


def test_defaults_are_not_shared_between_instances():
    a, b = SearchConfig(), SearchConfig()
    a.ops.append("conv_1x1")
    a.arch_betas[0] = 0.9
    assert b.ops == PAPER_OPS and b.arch_betas == [0.5, 0.999]


# ---------------------------------------------------------------------------------------------------
# Overrides: YAML and --set


def test_yaml_then_set_override_the_defaults(tmp_path):
    path = write(tmp_path, "epochs: 3\nbatch_size: 8\nlr: 0.1\n")
    c = load_config(path, ["epochs=5", "unrolled=true"])
    assert (c.epochs, c.batch_size, c.lr, c.unrolled) == (5, 8, 0.1, True)
    assert c.layers == 8  # untouched fields keep the defaults


def test_unknown_key_in_yaml_suggests_the_close_key(tmp_path):
    path = write(tmp_path, "epochs: 3\narch_weight_decy: 0.001\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert "'arch_weight_decy'" in msg and "did you mean 'arch_weight_decay'" in msg and str(path) in msg


def test_unknown_key_in_set_suggests_the_close_key():
    with pytest.raises(ConfigError) as err:
        load_config(overrides=["epoch=3"])
    assert "'epoch'" in str(err.value) and "did you mean 'epochs'" in str(err.value) and "--set" in str(err.value)


def test_unknown_key_far_from_all_lists_the_valid_keys():
    with pytest.raises(ConfigError, match="valid keys: .*epochs"):
        load_config(overrides=["zzzzzz=1"])


@pytest.mark.parametrize(
    "override, key",
    [
        ("epochs=abc", "epochs"),
        ("epochs=2.5", "epochs"),
        ("epochs=true", "epochs"),  # a bool is not an int here, although Python says it is
        ("lr=true", "lr"),
        ("lr=fast", "lr"),
        ("unrolled=1", "unrolled"),
        ("ops=sep_conv_3x3", "ops"),  # a list field needs a list
        ("dataset=3", "dataset"),
        ("subset=0.5", "subset"),
        ("data_options=[1, 2]", "data_options"),
    ],
)
def test_type_errors_are_rejected(override, key):
    with pytest.raises(ConfigError, match=f"^{key} must be"):
        load_config(overrides=[override])


def test_type_error_in_yaml_is_rejected(tmp_path):
    with pytest.raises(ConfigError, match="epochs must be int"):
        load_config(write(tmp_path, "epochs: abc\n"))


def test_ints_are_accepted_for_float_fields(tmp_path):
    c = load_config(write(tmp_path, "lr: 1\ngrad_clip: 10\n"), ["momentum=0", "train_portion=0.25"])
    assert c.lr == 1.0 and isinstance(c.lr, float)
    assert c.grad_clip == 10.0 and isinstance(c.grad_clip, float)
    assert c.momentum == 0.0 and isinstance(c.momentum, float)
    assert c.train_portion == 0.25


def test_exponent_notation_without_a_dot_is_a_float(tmp_path):
    # The paper's and the official code's own notation (--arch_learning_rate 3e-4, --weight_decay 3e-4).
    assert load_config(overrides=["arch_lr=3e-4"]).arch_lr == 3e-4
    assert load_config(write(tmp_path, "weight_decay: 3e-4\n")).weight_decay == 3e-4


def test_exponent_notation_with_a_dot_is_a_float():
    assert load_config(overrides=["arch_lr=3.0e-4", "lr=1.0e-2"]).arch_lr == 3e-4


def test_set_parses_values_as_yaml():
    c = load_config(
        overrides=[
            "ops=[none, skip_connect]",
            "data_dir=null",
            "subset=100",
            "arch_betas=[0.9, 0.99]",
            "dataset=cifar10",
            "data_options={size: 16}",
        ]
    )
    assert c.ops == ["none", "skip_connect"]
    assert c.data_dir is None
    assert c.subset == 100
    assert c.arch_betas == [0.9, 0.99]
    assert c.data_options == {"size": 16}
    assert load_config(overrides=["data_dir=/tmp/x=y"]).data_dir == "/tmp/x=y"  # only the first '=' splits
    assert load_config(overrides=[" epochs =7"]).epochs == 7


def test_set_null_overrides_a_yaml_value(tmp_path):
    path = write(tmp_path, "data_dir: /data\nsubset: 10\n")
    assert load_config(path).data_dir == "/data"
    c = load_config(path, ["data_dir=null", "subset=null"])
    assert c.data_dir is None and c.subset is None


def test_null_is_rejected_for_a_non_optional_field():
    with pytest.raises(ConfigError, match="epochs must be int"):
        load_config(overrides=["epochs=null"])


@pytest.mark.parametrize("item", ["epochs", "epochs 3", ""])
def test_set_without_equals_sign_is_rejected(item):
    with pytest.raises(ConfigError, match="key=value"):
        load_config(overrides=[item])


# ---------------------------------------------------------------------------------------------------
# Malformed files


@pytest.mark.parametrize(
    "text, match",
    [
        ("- epochs\n- 3\n", "mapping"),
        ("42\n", "mapping"),
        ("epochs: [1, 2\n", "not valid YAML"),
        ("epochs: 3\n  lr: 0.1\n: :\n", "not valid YAML"),
    ],
)
def test_a_file_that_is_not_a_mapping_names_the_file(tmp_path, text, match):
    path = write(tmp_path, text, "broken.yaml")
    with pytest.raises(ConfigError, match=match) as err:
        load_config(path)
    assert str(path) in str(err.value)


def test_an_empty_file_gives_the_defaults(tmp_path):
    assert load_config(write(tmp_path, "# nothing set\n")) == SearchConfig()


def test_yaml_loading_is_safe(tmp_path):
    marker = tmp_path / "pwned"
    path = write(tmp_path, f'epochs: !!python/object/apply:os.system ["touch {marker}"]\n')
    with pytest.raises(ConfigError, match="not valid YAML") as err:
        load_config(path)
    assert str(path) in str(err.value)
    assert not marker.exists()
    whole = write(tmp_path, f'!!python/object/apply:os.system ["touch {marker}"]\n', "whole.yaml")
    with pytest.raises(ConfigError):
        load_config(whole)
    assert not marker.exists()


# ---------------------------------------------------------------------------------------------------
# Validation


@pytest.mark.parametrize(
    "override, match",
    [
        ("ops=[none, sep_conv_3x4]", "unknown op"),
        ("ops=[skip_connect, skip_connect]", "twice"),
        ("ops=[none]", "besides 'none'"),
        ("ops=[]", "besides 'none'"),
        ("train_portion=0", "train_portion"),
        ("train_portion=1", "train_portion"),
        ("train_portion=1.5", "train_portion"),
        ("layers=2", "layers must be at least 3"),
        ("init_channels=15", "init_channels must be even"),
        ("epochs=0", "epochs must be at least 1"),
        ("nodes=0", "nodes must be at least 1"),
        ("batch_size=-1", "batch_size must be at least 1"),
        ("arch_betas=[0.5]", "arch_betas"),
        ("mixed_op=fast", "mixed_op: unknown mode 'fast'; available: exact, lean, partial, sample"),
        ("[mixed_op=partial, init_channels=12]", "partial_k=4 must .* divide init_channels=12"),
        ("[mixed_op=partial, partial_k=0]", "partial_k=0 must be at least 1"),
        ("temperature=[1]", "temperature must be two positive numbers"),
        ("temperature=[1, 0]", "temperature must be two positive numbers"),
        ("temperature=[a, b]", "temperature must be two positive numbers"),
        ("arch_start_epoch=50", "arch_start_epoch must lie in \\[0, epochs\\) = \\[0, 50\\), got 50"),
        ("temperature_schedule=cosine", "temperature_schedule: unknown 'cosine'; available: linear, exponential"),
    ],
)
def test_invalid_values_are_rejected(override, match):
    overrides = override[1:-1].split(", ") if override.startswith("[mixed") else [override]
    with pytest.raises(ConfigError, match=match):
        load_config(overrides=overrides)


def test_temperature_defaults_follow_the_mode():
    assert load_config().temperatures() == (1.0, 1.0)  # the paper's softmax
    assert load_config(overrides=["mixed_op=sample"]).temperatures() == (10.0, 0.1)  # GDAS
    assert load_config(overrides=["mixed_op=sample", "temperature=[5, 1]"]).temperatures() == (5.0, 1.0)
    assert load_config(overrides=["temperature=[2, 0.5]"]).temperatures() == (2.0, 0.5)


def test_unknown_op_lists_the_known_ops():
    with pytest.raises(ConfigError, match="known ops: .*sep_conv_3x3"):
        load_config(overrides=["ops=[sep_conv_3x4]"])


def test_boundary_values_are_accepted():
    c = load_config(
        overrides=["layers=3", "init_channels=2", "nodes=1", "ops=[skip_connect]", "train_portion=0.01", "epochs=1"]
    )
    assert (c.layers, c.init_channels, c.nodes, c.ops) == (3, 2, 1, ["skip_connect"])


def test_validate_catches_direct_construction():
    with pytest.raises(ConfigError, match="layers"):
        SearchConfig(layers=2).validate()


def test_config_errors_reach_library_callers_as_value_errors():
    # A program that drives dartsnas as a library catches a bad setting as it would any bad value
    # (`except ValueError`) and still gets the message that names the key.
    for override, message in (
        ("lr=fast", "lr must be float"),
        ("epoch=3", "did you mean 'epochs'"),
        ("layers=2", "layers"),
    ):
        with pytest.raises(ValueError, match=message) as caught:
            load_config(None, [override])
        assert caught.type is ConfigError, override


# ---------------------------------------------------------------------------------------------------
# Saving


def test_save_then_load_round_trips(tmp_path):
    config = load_config(
        overrides=[
            "epochs=3",
            "ops=[none, skip_connect, sep_conv_3x3]",
            "data_dir=/d",
            "subset=10",
            "data_options={size: 16}",
            "lr=1",
            "arch_betas=[0.9, 0.99]",
            "unrolled=true",
            "crop_padding=0",
        ]
    )
    path = tmp_path / "config.yaml"
    save_config(config, path)
    again = load_config(path)
    assert again == config
    assert dataclasses.asdict(again) == dataclasses.asdict(config)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_config_round_trips(tmp_path, path):
    config = load_config(path)
    save_config(config, tmp_path / "saved.yaml")
    assert load_config(tmp_path / "saved.yaml") == config


def test_saved_config_names_every_field(tmp_path):
    save_config(SearchConfig(), tmp_path / "c.yaml")
    text = (tmp_path / "c.yaml").read_text()
    for f in dataclasses.fields(SearchConfig):
        assert f"{f.name}:" in text
    assert os.path.getsize(tmp_path / "c.yaml") > 0
