"""Word dropout (`dropoute`, whole words dropped from the embedding matrix) as the official code sets it:
0.1 for training a cell (rnn/train.py, `--dropoute default=0.1`), 0 during the search
(rnn/train_search.py, `--dropoute default=0`)."""

import yaml

from dartsnas.recurrent.config import RNN_CONFIG_DIR, RecurrentSearchConfig, RecurrentTrainConfig, load_recurrent_config

OFFICIAL_TRAIN, OFFICIAL_SEARCH = 0.1, 0.0


def test_training_default_and_paper_configs_drop_words_as_the_official_train_py():
    assert RecurrentTrainConfig().dropoute == OFFICIAL_TRAIN
    for name in ("ptb", "wikitext2"):
        assert load_recurrent_config(RecurrentTrainConfig, name).dropoute == OFFICIAL_TRAIN, name


def test_search_keeps_the_official_search_value():
    assert RecurrentSearchConfig().dropoute == OFFICIAL_SEARCH
    assert load_recurrent_config(RecurrentSearchConfig, "ptb").dropoute == OFFICIAL_SEARCH


def test_quick_training_preset_states_its_own_word_dropout():
    # The preset lowers the paper's dropouts for its small model; it names its dropoute rather than
    # inheriting whatever the default is.
    raw = yaml.safe_load((RNN_CONFIG_DIR / "train" / "quick.yaml").read_text())
    assert raw["network"]["dropoute"] == 0.0
