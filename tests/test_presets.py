"""Parameter counts: the ALBERT paper, transformers and keras-hub are the references."""

import inspect
import json
import pathlib
import re
import subprocess
import sys

import keras_hub
import pytest
import transformers

from keras_albert.models.encoder import Encoder
from keras_albert.presets import CONFIG_KEYS, list_presets, preset_config

# Exact counts as transformers and keras-hub compute them (pooler included).
EXACT = {
    "albert_base": 11_683_584,
    "albert_large": 17_683_968,
    "albert_xxlarge": 222_595_584,
    "bert_base": 109_482_240,
    "distilbert_base": 66_362_880,
}


@pytest.mark.parametrize("name", sorted(EXACT))
def test_exact_parameter_counts(name):
    assert Encoder.from_preset(name).count_params() == EXACT[name]


def test_bert_large_and_albert_xlarge_match_transformers():
    # transformers builds the same architectures independently.
    bert_large = transformers.BertConfig(
        hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096
    )
    assert Encoder.from_preset("bert_large").count_params() == transformers.BertModel(
        bert_large
    ).num_parameters()
    albert_xlarge = transformers.AlbertConfig(
        vocab_size=30000, embedding_size=128, hidden_size=2048, num_hidden_layers=24,
        num_attention_heads=16, intermediate_size=8192,
    )
    assert Encoder.from_preset("albert_xlarge").count_params() == transformers.AlbertModel(
        albert_xlarge
    ).num_parameters()


def test_albert_base_matches_keras_hub_backbone():
    backbone = keras_hub.models.AlbertBackbone(
        vocabulary_size=30000, num_layers=12, num_heads=12, embedding_dim=128,
        hidden_dim=768, intermediate_dim=3072,
    )
    assert Encoder.from_preset("albert_base").count_params() == backbone.count_params()


# The paper prints millions, rounded inconsistently (9.68M shows as 10M, 89.65M as
# 89M), so these compare within 0.7M of the printed figure.
@pytest.mark.parametrize(
    "embedding_dim, millions",
    [(64, 10), (128, 12), (256, 16), (768, 31)],
)
def test_albert_paper_table3_embedding_sizes(embedding_dim, millions):
    params = Encoder.from_preset("albert_base", embedding_dim=embedding_dim).count_params()
    assert abs(params / 1e6 - millions) < 0.7


@pytest.mark.parametrize(
    "sharing, millions",
    [("none", 89), ("attention", 64), ("ffn", 38), ("all", 12)],
)
def test_albert_paper_table4_sharing_strategies(sharing, millions):
    params = Encoder.from_preset("albert_base", sharing=sharing).count_params()
    assert abs(params / 1e6 - millions) < 0.7


def test_unknown_preset_lists_known_ones():
    with pytest.raises(ValueError, match=r"Unknown preset 'albert_huge'.*albert_base.*bert_base"):
        preset_config("albert_huge")


def test_every_preset_builds_and_distilbert_has_no_types_or_pooler():
    assert {"albert_tiny", "bert_tiny", "distilbert_tiny"} <= set(list_presets())
    config = preset_config("distilbert_base")
    assert config["num_segments"] == 0 and config["use_pooler"] is False
    assert preset_config("albert_base")["activation"] == "gelu_approximate"
    assert preset_config("bert_base")["activation"] == "gelu"


def _cli():
    script = pathlib.Path(sys.executable).parent / "keras-albert"
    assert script.exists(), "the keras-albert console script is not installed"
    return str(script)


def test_cli_info_json_reports_exact_params():
    result = subprocess.run(
        [_cli(), "info", "albert_base", "--json"], capture_output=True, text=True, check=True
    )
    summary = json.loads(result.stdout)
    assert summary["params"] == EXACT["albert_base"]
    assert summary["embedding_dim"] == 128 and summary["sharing"] == "all"
    assert summary["family"] == "albert"


def test_cli_info_overrides_and_errors():
    result = subprocess.run(
        [_cli(), "info", "albert_base", "--json", "--set", "sharing=none"],
        capture_output=True, text=True, check=True,
    )
    assert json.loads(result.stdout)["params"] == 89_650_176
    result = subprocess.run([_cli(), "info", "albert_huge"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "Unknown preset 'albert_huge'" in result.stderr and "albert_base" in result.stderr
    text = subprocess.run([_cli(), "info", "bert_base"], capture_output=True, text=True, check=True)
    assert "109,482,240" in text.stdout


def test_config_keys_are_the_encoder_arguments():
    # Written out in presets.py (which imports no model): they must follow `Encoder`.
    parameters = inspect.signature(Encoder.__init__).parameters.values()
    arguments = {p.name for p in parameters if p.kind is p.POSITIONAL_OR_KEYWORD} - {"self"}
    assert set(CONFIG_KEYS) == arguments | {"name", "trainable"}
    encoder = Encoder(vocabulary_size=10, hidden_dim=8, num_layers=1, num_heads=2)
    assert set(CONFIG_KEYS) == set(encoder.get_config())
    assert len(CONFIG_KEYS) == len(set(CONFIG_KEYS))


def test_unknown_override_key_names_it_and_lists_the_valid_keys_sorted():
    valid = sorted(Encoder(vocabulary_size=10, hidden_dim=8, num_layers=1,
                           num_heads=2).get_config())
    expected = (r"Unknown Encoder configuration key\(s\) \['key_dim'\]\. Valid keys: "
                + re.escape(", ".join(valid)) + r"\.$")
    with pytest.raises(ValueError, match=expected):
        preset_config("albert_base", key_dim=128)
    with pytest.raises(ValueError, match=expected):
        Encoder.from_preset("albert_base", key_dim=128, embedding_dim=64)
    with pytest.raises(ValueError, match=r"\['hiden_dim', 'key_dim'\]"):
        preset_config("bert_tiny", key_dim=128, hiden_dim=32, num_layers=1)
    # The constructor itself refuses what keras.Model would silently drop.
    with pytest.raises(ValueError, match=r"\['key_dim'\]"):
        Encoder(vocabulary_size=10, hidden_dim=8, num_layers=1, num_heads=2, key_dim=4)
    # Every config key, Keras's `name` and `trainable` included, is a valid override.
    assert preset_config("bert_tiny", name="teacher", trainable=False)["name"] == "teacher"
    assert Encoder.from_preset("bert_tiny", name="teacher", num_layers=1).name == "teacher"


def test_cli_info_refuses_an_unknown_set_key():
    result = subprocess.run(
        [_cli(), "info", "albert_base", "--set", "key_dim=128"], capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and result.stdout == ""
    assert "Unknown Encoder configuration key(s) ['key_dim']" in result.stderr
    assert "Valid keys: activation, attention_dropout, dropout, dtype," in result.stderr
