"""Our encoders against transformers (PyTorch, CPU) given the same weights.

The reference is transformers' own forward pass; our side only receives the
weights. Padding is in every batch and compared positions are the real tokens.
"""

import json

import numpy as np
import pytest
import torch
import transformers

from keras_albert.conversion import encoder_from_transformers, load_transformers_state_dict
from keras_albert.models.encoder import Encoder

TOLERANCE = 1e-5


def _batch(vocabulary_size, with_types=True, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, vocabulary_size, size=(3, 11))
    lengths = [11, 7, 4]
    mask = np.zeros_like(ids)
    for row, length in enumerate(lengths):
        mask[row, :length] = 1
    ids = ids * mask
    types = np.zeros_like(ids)
    if with_types:
        types[0, 6:] = 1
        types[1, 4:7] = 1
    return ids, mask, types


def _compare(hf_model, encoder, with_types=True, sop=False):
    ids, mask, types = _batch(hf_model.config.vocab_size, with_types)
    torch_inputs = {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask)}
    if with_types:
        torch_inputs["token_type_ids"] = torch.tensor(types)
    with torch.no_grad():
        expected = hf_model(**torch_inputs, output_hidden_states=True)
    ours = encoder(
        {
            "input_word_ids": ids.astype("int32"),
            "input_mask": mask.astype("int32"),
            "input_type_ids": types.astype("int32"),
        }
    )
    real = mask.astype(bool)
    difference = np.abs(ours["sequence_output"].numpy() - expected.last_hidden_state.numpy())
    assert difference[real].max() <= TOLERANCE
    # hidden_states[0] is the embedding output; then one entry per block application.
    assert len(ours["encoder_outputs"]) == len(expected.hidden_states) - 1
    for ours_layer, hf_layer in zip(ours["encoder_outputs"], expected.hidden_states[1:]):
        assert np.abs(ours_layer.numpy() - hf_layer.numpy())[real].max() <= TOLERANCE
    return ours, expected


def test_albert_two_groups_two_inner_blocks_match_transformers():
    torch.manual_seed(0)
    config = transformers.AlbertConfig(
        vocab_size=211, embedding_size=24, hidden_size=48, num_hidden_layers=4,
        num_attention_heads=4, intermediate_size=96, num_hidden_groups=2,
        inner_group_num=2, max_position_embeddings=32, hidden_act="gelu_new",
    )
    hf_model = transformers.AlbertModel(config).eval()
    encoder = encoder_from_transformers(hf_model.config, hf_model.state_dict())
    assert encoder.count_params() == hf_model.num_parameters()
    # 2 groups x 2 inner blocks = 4 distinct attention and feed-forward sublayers,
    # applied 4 layers x 2 inner = 8 times.
    assert len(encoder.transformer.attention_layers) == 4
    ours, expected = _compare(hf_model, encoder)
    assert len(ours["encoder_outputs"]) == 8
    assert np.abs(ours["pooled_output"].numpy() - expected.pooler_output.numpy()).max() <= TOLERANCE


def test_bert_matches_transformers():
    torch.manual_seed(1)
    config = transformers.BertConfig(
        vocab_size=199, hidden_size=48, num_hidden_layers=3, num_attention_heads=4,
        intermediate_size=80, max_position_embeddings=32,
    )
    hf_model = transformers.BertModel(config).eval()
    encoder = encoder_from_transformers(hf_model.config, hf_model.state_dict())
    assert encoder.count_params() == hf_model.num_parameters()
    ours, expected = _compare(hf_model, encoder)
    assert np.abs(ours["pooled_output"].numpy() - expected.pooler_output.numpy()).max() <= TOLERANCE


def test_distilbert_matches_transformers_and_pools_first_token():
    torch.manual_seed(2)
    config = transformers.DistilBertConfig(
        vocab_size=187, dim=48, n_layers=3, n_heads=4, hidden_dim=72,
        max_position_embeddings=32,
    )
    hf_model = transformers.DistilBertModel(config).eval()
    encoder = encoder_from_transformers(hf_model.config, hf_model.state_dict())
    assert encoder.count_params() == hf_model.num_parameters()
    assert encoder.input_keys == ("input_word_ids", "input_mask")
    ours, expected = _compare(hf_model, encoder, with_types=False)
    np.testing.assert_allclose(
        ours["pooled_output"].numpy(), expected.last_hidden_state.numpy()[:, 0], atol=TOLERANCE
    )


def test_albert_pretraining_heads_match_transformers():
    """The tied masked-LM head and the sentence-order head against AlbertForPreTraining."""
    from keras_albert.models.tasks import PretrainingModel

    torch.manual_seed(3)
    config = transformers.AlbertConfig(
        vocab_size=151, embedding_size=16, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=4, intermediate_size=64, max_position_embeddings=32,
    )
    hf_model = transformers.AlbertForPreTraining(config).eval()
    state = {k: v.detach().numpy() for k, v in hf_model.state_dict().items()}
    encoder_state = {k: v for k, v in state.items() if k.startswith("albert.")}
    encoder = encoder_from_transformers(hf_model.config, encoder_state)
    model = PretrainingModel(encoder)
    head = model.mlm_head
    head.dense.kernel.assign(state["predictions.dense.weight"].T)
    head.dense.bias.assign(state["predictions.dense.bias"])
    head.layer_norm.gamma.assign(state["predictions.LayerNorm.weight"])
    head.layer_norm.beta.assign(state["predictions.LayerNorm.bias"])
    head.output_bias.assign(state["predictions.bias"])
    model.sop_head.output_dense.kernel.assign(state["sop_classifier.classifier.weight"].T)
    model.sop_head.output_dense.bias.assign(state["sop_classifier.classifier.bias"])
    # transformers ties the decoder to the word embeddings too.
    np.testing.assert_array_equal(
        state["predictions.decoder.weight"], state["albert.embeddings.word_embeddings.weight"]
    )

    ids, mask, types = _batch(config.vocab_size)
    positions = np.array([[1, 3, 5], [0, 2, 6], [1, 2, 3]])
    with torch.no_grad():
        expected = hf_model(
            input_ids=torch.tensor(ids),
            attention_mask=torch.tensor(mask),
            token_type_ids=torch.tensor(types),
        )
    ours = model(
        {
            "input_word_ids": ids, "input_mask": mask, "input_type_ids": types,
            "masked_positions": positions,
        }
    )
    expected_mlm = np.take_along_axis(
        expected.prediction_logits.numpy(), positions[..., None], axis=1
    )
    np.testing.assert_allclose(ours["mlm_logits"].numpy(), expected_mlm, atol=1e-4)
    np.testing.assert_allclose(
        ours["sop_logits"].numpy(), expected.sop_logits.numpy(), atol=TOLERANCE
    )


def test_real_minilm_checkpoint_matches_transformers(data_dir):
    """Real pretrained weights (all-MiniLM-L6-v2, a 6-layer BERT) through safetensors."""
    from safetensors.numpy import load_file

    directory = data_dir / "models" / "minilm-l6-h384-uncased"
    config = json.loads((directory / "config.json").read_text())
    state = load_file(str(directory / "model.safetensors"))
    encoder = encoder_from_transformers(config, state)
    hf_model = transformers.BertModel.from_pretrained(str(directory)).eval()
    assert encoder.count_params() == hf_model.num_parameters()
    _compare(hf_model, encoder)


def _tiny_bert_state():
    torch.manual_seed(4)
    config = transformers.BertConfig(
        vocab_size=97, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=16,
    )
    hf_model = transformers.BertModel(config)
    return config, {k: v.detach().numpy() for k, v in hf_model.state_dict().items()}


def _corrupt(state, kind):
    state = dict(state)
    if kind == "missing":
        del state["encoder.layer.1.output.dense.weight"]
    elif kind == "extra":
        state["encoder.layer.2.output.dense.weight"] = np.zeros((32, 64), "float32")
    elif kind == "shape":
        state["encoder.layer.0.attention.self.query.weight"] = np.zeros((32, 31), "float32")
    return state


@pytest.mark.parametrize(
    "kind, message",
    [
        ("missing", r"missing from the checkpoint: \['encoder\.layer\.1\.output\.dense\.weight"),
        ("extra", r"no place in the model: \['encoder\.layer\.2\.output\.dense\.weight'\]"),
        ("shape", r"shape mismatches: \['encoder\.layer\.0\.attention\.self\.query\.weight"),
    ],
)
def test_mismatched_checkpoint_is_refused_and_nothing_is_loaded(kind, message):
    config, state = _tiny_bert_state()
    from keras_albert.conversion import encoder_config_from_transformers

    encoder = Encoder(**encoder_config_from_transformers(config))
    before = [w.numpy().copy() for w in encoder.weights]
    with pytest.raises(ValueError, match=message):
        load_transformers_state_dict(encoder, _corrupt(state, kind))
    for old, weight in zip(before, encoder.weights):
        np.testing.assert_array_equal(old, weight.numpy())


def test_checkpoint_family_must_match_encoder_layout():
    config, state = _tiny_bert_state()
    albert_like = Encoder(
        vocabulary_size=97, hidden_dim=32, num_layers=2, num_heads=4, intermediate_dim=64,
        max_sequence_length=16, sharing="all",
    )
    with pytest.raises(ValueError, match="one block per layer and no sharing"):
        load_transformers_state_dict(albert_like, state)
