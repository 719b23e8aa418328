"""Checkpoint conversion: Hugging Face directories, original ALBERT TF1 checkpoints and
keras-hub presets in; `.keras` files and Hugging Face directories out.

The references are transformers' and keras-hub's own forward passes and the files
they write; our side only receives the checkpoint. Random models get every weight
perturbed (biases and LayerNorm parameters start at 0 and 1), so a tensor put in
the wrong place, or transposed, changes the outputs.
"""

import json
import pathlib
import subprocess
import sys
import threading
import time

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf
import torch
import transformers
from conftest import read_tsv_column
from safetensors.numpy import load_file, save_file

import keras_albert
from keras_albert.conversion import (
    convert,
    encoder_config_from_transformers,
    load_transformers_state_dict,
    save_huggingface,
)
from keras_albert.models.encoder import Encoder
from keras_albert.models.tasks import PretrainingModel

ENCODER_TOLERANCE = 1e-5
MLM_TOLERANCE = 1e-4  # logits over the vocabulary are larger numbers

# family -> (transformers pretraining class, its config, its sentence-logits field)
HF_MODELS = {
    "albert": (
        "AlbertForPreTraining",
        dict(vocab_size=211, embedding_size=24, hidden_size=48, num_hidden_layers=4,
             num_hidden_groups=2, inner_group_num=2, num_attention_heads=4,
             intermediate_size=96, max_position_embeddings=32, hidden_act="gelu_new"),
        "sop_logits",
    ),
    "bert": (
        "BertForPreTraining",
        dict(vocab_size=199, hidden_size=48, num_hidden_layers=3, num_attention_heads=4,
             intermediate_size=80, max_position_embeddings=32),
        "seq_relationship_logits",
    ),
    "distilbert": (
        "DistilBertForMaskedLM",
        dict(vocab_size=187, dim=48, n_layers=3, n_heads=4, hidden_dim=72,
             max_position_embeddings=32),
        None,
    ),
}


def _perturb_torch(model, seed):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():  # tied parameters are listed once
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
    return model


def _perturb_keras(model, seed):
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        weight.assign(weight.numpy() + rng.normal(0, 0.05, weight.shape).astype("float32"))
    return model


def _batch(vocabulary_size, seed=0):
    """Three rows with padding, two segments and three masked positions each."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, vocabulary_size, size=(3, 11))
    mask = np.zeros_like(ids)
    for row, length in enumerate([11, 7, 4]):
        mask[row, :length] = 1
    ids = ids * mask
    types = np.zeros_like(ids)
    types[0, 6:] = 1
    types[1, 4:7] = 1
    positions = np.array([[1, 3, 5], [0, 2, 6], [1, 2, 3]])
    return ids, mask, types, positions


def _hf_reference(hf_model, family, sentence_field, batch):
    """transformers' hidden states, pooled output, MLM and SOP/NSP logits."""
    ids, mask, types, positions = batch
    inputs = {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask)}
    if family != "distilbert":
        inputs["token_type_ids"] = torch.tensor(types)
    with torch.no_grad():
        output = hf_model(**inputs, output_hidden_states=True)
        base = getattr(hf_model, family)(**inputs)
    logits = output.logits if family == "distilbert" else output.prediction_logits
    return {
        "hidden": [h.numpy() for h in output.hidden_states[1:]],
        "pooled": None if family == "distilbert" else base.pooler_output.numpy(),
        "mlm": np.take_along_axis(logits.numpy(), positions[..., None], axis=1),
        "sentence": getattr(output, sentence_field).numpy() if sentence_field else None,
    }


def _ours(model, batch):
    ids, mask, types, positions = batch
    features = {"input_word_ids": ids.astype("int32"), "input_mask": mask.astype("int32"),
                "input_type_ids": types.astype("int32")}
    encoder = getattr(model, "encoder", model)
    outputs = {"encoder": encoder(features)}
    if isinstance(model, PretrainingModel):
        outputs.update(model({**features, "masked_positions": positions.astype("int32")}))
    return outputs


def _max_differences(ours, reference, mask):
    """Largest absolute differences, over real tokens for per-token outputs."""
    real = mask.astype(bool)
    hidden = max(
        np.abs(a.numpy() - b)[real].max()
        for a, b in zip(ours["encoder"]["encoder_outputs"], reference["hidden"], strict=True)
    )
    result = {"hidden": hidden}
    if reference["pooled"] is not None:
        result["pooled"] = np.abs(ours["encoder"]["pooled_output"].numpy()
                                  - reference["pooled"]).max()
    if "mlm_logits" in ours:
        result["mlm"] = np.abs(ours["mlm_logits"].numpy() - reference["mlm"]).max()
    if reference["sentence"] is not None:
        result["sentence"] = np.abs(ours["sop_logits"].numpy() - reference["sentence"]).max()
    return result


def _assert_close(differences):
    for name, value in differences.items():
        limit = MLM_TOLERANCE if name == "mlm" else ENCODER_TOLERANCE
        assert value <= limit, f"{name}: max difference {value:.2e} > {limit:.0e}"


@pytest.fixture(scope="module")
def hf_checkpoints(tmp_path_factory):
    """family -> (transformers model with heads, its save_pretrained directory)."""
    checkpoints = {}
    for seed, (family, (class_name, config, _)) in enumerate(HF_MODELS.items()):
        torch.manual_seed(seed)
        model_class = getattr(transformers, class_name)
        hf_model = model_class(model_class.config_class(**config)).eval()
        _perturb_torch(hf_model, seed)
        directory = tmp_path_factory.mktemp(f"hf_{family}")
        hf_model.save_pretrained(str(directory))
        checkpoints[family] = hf_model, directory
    return checkpoints


@pytest.fixture(scope="module")
def converted(hf_checkpoints):
    """family -> our PretrainingModel converted from the saved directory."""
    return {
        family: keras_albert.from_pretrained(directory, heads=True).model
        for family, (_, directory) in hf_checkpoints.items()
    }


# === Hugging Face directories ===


@pytest.mark.parametrize("family", sorted(HF_MODELS))
def test_huggingface_directory_with_heads_matches_transformers(family, hf_checkpoints,
                                                               converted):
    hf_model, directory = hf_checkpoints[family]
    model = converted[family]
    assert isinstance(model, PretrainingModel)
    assert (model.sop_head is not None) == (family != "distilbert")
    batch = _batch(hf_model.config.vocab_size)
    differences = _max_differences(
        _ours(model, batch), _hf_reference(hf_model, family, HF_MODELS[family][2], batch),
        batch[1],
    )
    print(f"{family} from Hugging Face: {differences}")
    _assert_close(differences)
    # Without heads: the bare encoder, with the same weights as the heads model's.
    encoder, preprocessor = keras_albert.from_pretrained(directory)
    assert isinstance(encoder, Encoder) and preprocessor is None
    for ours, theirs in zip(encoder.weights, model.encoder.weights, strict=True):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_albert_checkpoint_has_all_groups(converted):
    stack = converted["albert"].encoder.transformer
    # 2 groups x 2 inner blocks, applied by 4 layers x 2 inner = 8 block applications.
    assert [key[1:] for key in stack.attention_keys] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert len(stack.schedule) == 8


# === Original ALBERT TF1 checkpoints ===


def _original_albert_arrays(state, num_groups, inner_group_num):
    """AlbertForPreTraining tensors under google-research/albert's names
    (REFERENCE.md): kernels are [in, out], `output_weights` stays [2, H]."""

    def kernel(name):
        return state[f"{name}.weight"].T

    arrays = {
        "bert/embeddings/word_embeddings": state["albert.embeddings.word_embeddings.weight"],
        "bert/embeddings/position_embeddings":
            state["albert.embeddings.position_embeddings.weight"],
        "bert/embeddings/token_type_embeddings":
            state["albert.embeddings.token_type_embeddings.weight"],
        "bert/embeddings/LayerNorm/gamma": state["albert.embeddings.LayerNorm.weight"],
        "bert/embeddings/LayerNorm/beta": state["albert.embeddings.LayerNorm.bias"],
        "bert/encoder/embedding_hidden_mapping_in/kernel":
            kernel("albert.encoder.embedding_hidden_mapping_in"),
        "bert/encoder/embedding_hidden_mapping_in/bias":
            state["albert.encoder.embedding_hidden_mapping_in.bias"],
        "bert/pooler/dense/kernel": kernel("albert.pooler"),
        "bert/pooler/dense/bias": state["albert.pooler.bias"],
        "cls/predictions/transform/dense/kernel": kernel("predictions.dense"),
        "cls/predictions/transform/dense/bias": state["predictions.dense.bias"],
        "cls/predictions/transform/LayerNorm/gamma": state["predictions.LayerNorm.weight"],
        "cls/predictions/transform/LayerNorm/beta": state["predictions.LayerNorm.bias"],
        "cls/predictions/output_bias": state["predictions.bias"],
        "cls/seq_relationship/output_weights": state["sop_classifier.classifier.weight"],
        "cls/seq_relationship/output_bias": state["sop_classifier.classifier.bias"],
    }
    for group in range(num_groups):
        for inner in range(inner_group_num):
            tf1 = f"bert/encoder/transformer/group_{group}/inner_group_{inner}/"
            hf = f"albert.encoder.albert_layer_groups.{group}.albert_layers.{inner}."
            dense = {
                "attention_1/self/query": "attention.query",
                "attention_1/self/key": "attention.key",
                "attention_1/self/value": "attention.value",
                "attention_1/output/dense": "attention.dense",
                "ffn_1/intermediate/dense": "ffn",
                "ffn_1/intermediate/output/dense": "ffn_output",
            }
            for tf1_scope, hf_scope in dense.items():
                arrays[f"{tf1}{tf1_scope}/kernel"] = kernel(hf + hf_scope)
                arrays[f"{tf1}{tf1_scope}/bias"] = state[f"{hf}{hf_scope}.bias"]
            for tf1_scope, hf_scope in (("LayerNorm", "attention.LayerNorm"),
                                        ("LayerNorm_1", "full_layer_layer_norm")):
                arrays[f"{tf1}{tf1_scope}/gamma"] = state[f"{hf}{hf_scope}.weight"]
                arrays[f"{tf1}{tf1_scope}/beta"] = state[f"{hf}{hf_scope}.bias"]
    return arrays


def _write_tf1_checkpoint(directory, arrays, prefix="", optimizer_slots=False):
    """Saves `arrays` with TF1's Saver, as google-research/albert's training did."""
    with tf.Graph().as_default() as graph:
        variables = [tf.compat.v1.Variable(value, name=prefix + name)
                     for name, value in arrays.items()]
        if optimizer_slots:
            variables += [
                tf.compat.v1.Variable(np.zeros_like(value), name=f"{prefix}{name}/{slot}")
                for name, value in arrays.items()
                for slot in ("adam_m", "adam_v")
            ]
            variables.append(tf.compat.v1.train.get_or_create_global_step())
        saver = tf.compat.v1.train.Saver(variables)
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            saver.save(session, str(directory / "model.ckpt-100"))


@pytest.mark.parametrize("variant", ["plain", "module_prefix", "optimizer_slots"])
def test_original_albert_tf1_checkpoint_matches_transformers(variant, hf_checkpoints,
                                                             tmp_path):
    hf_model, _ = hf_checkpoints["albert"]
    config = HF_MODELS["albert"][1]
    state = {name: value.numpy() for name, value in hf_model.state_dict().items()}
    arrays = _original_albert_arrays(state, config["num_hidden_groups"],
                                     config["inner_group_num"])
    _write_tf1_checkpoint(tmp_path, arrays, prefix="module/" if variant == "module_prefix"
                          else "", optimizer_slots=variant == "optimizer_slots")
    names = tf.train.list_variables(str(tmp_path / "model.ckpt-100"))
    assert len(names) == len(arrays) * (3 if variant == "optimizer_slots" else 1) + (
        variant == "optimizer_slots")
    # The original config: "gelu" there is the tanh GELU (transformers' gelu_new).
    original_config = {key: value for key, value in config.items() if key != "hidden_act"}
    original_config.update(hidden_act="gelu", type_vocab_size=2, hidden_dropout_prob=0.0,
                           attention_probs_dropout_prob=0.0, initializer_range=0.02)
    (tmp_path / "albert_config.json").write_text(json.dumps(original_config))

    # A directory, or (as here for one variant) the checkpoint prefix itself.
    source = tmp_path / "model.ckpt-100" if variant == "module_prefix" else tmp_path
    model, preprocessor = keras_albert.from_pretrained(source, heads=True)
    assert preprocessor is None
    batch = _batch(config["vocab_size"], seed=1)
    differences = _max_differences(
        _ours(model, batch), _hf_reference(hf_model, "albert", "sop_logits", batch), batch[1]
    )
    print(f"ALBERT TF1 ({variant}): {differences}")
    _assert_close(differences)


def test_tf1_checkpoint_with_an_unknown_variable_is_refused(hf_checkpoints, tmp_path):
    hf_model, _ = hf_checkpoints["albert"]
    config = HF_MODELS["albert"][1]
    state = {name: value.numpy() for name, value in hf_model.state_dict().items()}
    arrays = _original_albert_arrays(state, 2, 2)
    arrays["bert/encoder/transformer/group_2/inner_group_0/LayerNorm/beta"] = np.zeros(48, "f")
    del arrays["bert/encoder/transformer/group_1/inner_group_1/LayerNorm_1/gamma"]
    _write_tf1_checkpoint(tmp_path, arrays)
    (tmp_path / "albert_config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError) as error:
        keras_albert.from_pretrained(tmp_path)
    message = str(error.value)
    assert "missing from the checkpoint: ['bert/encoder/transformer/group_1/inner_group_1/" \
        "LayerNorm_1/gamma" in message
    assert "no place in the model: ['bert/encoder/transformer/group_2/inner_group_0/" \
        "LayerNorm/beta']" in message


# === keras-hub presets ===

KERAS_HUB_BACKBONES = {
    "AlbertBackbone": dict(embedding_dim=16, num_layers=4, num_groups=2,
                           num_inner_repetitions=2),
    "BertBackbone": dict(num_layers=2),
    "DistilBertBackbone": dict(num_layers=2),
}


@pytest.mark.parametrize("class_name", sorted(KERAS_HUB_BACKBONES))
def test_keras_hub_preset_matches_keras_hub(class_name, tmp_path):
    keras.utils.set_random_seed(5)
    backbone = getattr(keras_hub.models, class_name)(
        vocabulary_size=101, num_heads=4, hidden_dim=32, intermediate_dim=48,
        max_sequence_length=24, **KERAS_HUB_BACKBONES[class_name]
    )
    _perturb_keras(backbone, seed=5)
    backbone.save_to_preset(str(tmp_path / "preset"))

    encoder, preprocessor = keras_albert.from_pretrained(tmp_path / "preset")
    assert preprocessor is None
    assert encoder.count_params() == backbone.count_params()
    ids, mask, types, _ = _batch(101, seed=2)
    inputs = {"token_ids": ids, "padding_mask": mask}
    if class_name != "DistilBertBackbone":
        inputs["segment_ids"] = types
    expected = backbone(inputs)
    expected = expected if isinstance(expected, dict) else {"sequence_output": expected}
    ours = encoder({"input_word_ids": ids, "input_mask": mask, "input_type_ids": types})
    real = mask.astype(bool)
    differences = {"sequence": np.abs(ours["sequence_output"].numpy()
                                      - np.asarray(expected["sequence_output"]))[real].max()}
    if "pooled_output" in expected:
        differences["pooled"] = np.abs(ours["pooled_output"].numpy()
                                       - np.asarray(expected["pooled_output"])).max()
    print(f"keras-hub {class_name}: {differences}")
    _assert_close(differences)


# === A real pretrained checkpoint ===


def test_real_minilm_sentence_embeddings_match_transformers(data_dir):
    directory = data_dir / "models" / "minilm-l6-h384-uncased"
    sentences = read_tsv_column(data_dir / "sst2" / "dev.tsv", "sentence", limit=200)
    assert len(sentences) == 200
    encoder, preprocessor = keras_albert.from_pretrained(directory, pad_to="batch")
    tokenizer = transformers.BertTokenizerFast(vocab=str(directory / "vocab.txt"))
    hf_model = transformers.BertModel.from_pretrained(str(directory)).eval()

    def pool(tokens, mask):
        mask = mask[..., None].astype("float32")
        mean = (tokens * mask).sum(axis=1) / mask.sum(axis=1)
        return mean / np.linalg.norm(mean, axis=-1, keepdims=True)

    ours, theirs = [], []
    for start in range(0, len(sentences), 50):
        chunk = sentences[start:start + 50]
        features = preprocessor(tf.constant(chunk))
        ours.append(pool(encoder(features)["sequence_output"].numpy(),
                         features["input_mask"].numpy()))
        encoded = tokenizer(chunk, padding=True, truncation=True, max_length=128,
                            return_tensors="pt")
        with torch.no_grad():
            tokens = hf_model(**encoded).last_hidden_state.numpy()
        theirs.append(pool(tokens, encoded["attention_mask"].numpy()))
    cosine = np.sum(np.concatenate(ours) * np.concatenate(theirs), axis=-1)
    print(f"MiniLM sentence embeddings: min cosine {cosine.min():.8f}")
    assert cosine.min() >= 0.99999


# === Writing Hugging Face directories ===


@pytest.mark.parametrize(
    "preset, class_name, sentence_field",
    [("albert_tiny", "AlbertForPreTraining", "sop_logits"),
     ("bert_tiny", "BertForPreTraining", "seq_relationship_logits"),
     ("distilbert_tiny", "DistilBertForMaskedLM", None)],
)
def test_ours_to_huggingface_directory_reproduces_outputs_in_transformers(
    preset, class_name, sentence_field, tmp_path
):
    keras.utils.set_random_seed(7)
    model = PretrainingModel(Encoder.from_preset(preset), sentence_order=bool(sentence_field))
    _perturb_keras(model, seed=7)
    save_huggingface(model, tmp_path / "hf")
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["architectures"] == [
        class_name
    ]
    hf_model, info = getattr(transformers, class_name).from_pretrained(
        str(tmp_path / "hf"), output_loading_info=True
    )
    assert not any(info[key] for key in ("missing_keys", "unexpected_keys", "mismatched_keys"))
    family = preset.split("_")[0]
    batch = _batch(model.encoder.vocabulary_size, seed=3)
    differences = _max_differences(
        _ours(model, batch), _hf_reference(hf_model.eval(), family, sentence_field, batch),
        batch[1],
    )
    print(f"{preset} to Hugging Face: {differences}")
    _assert_close(differences)


@pytest.mark.parametrize("family", sorted(HF_MODELS))
def test_huggingface_to_ours_to_huggingface_reproduces_every_tensor(family, hf_checkpoints,
                                                                    converted, tmp_path):
    _, directory = hf_checkpoints[family]
    save_huggingface(converted[family], tmp_path / "again")
    original = load_file(str(directory / "model.safetensors"))
    again = load_file(str(tmp_path / "again" / "model.safetensors"))
    assert sorted(again) == sorted(original)
    for name, value in original.items():
        assert again[name].dtype == value.dtype, name
        np.testing.assert_array_equal(again[name], value, err_msg=name)


# === Refusals ===


def _corrupted_copy(source, destination, kind):
    destination.mkdir()
    (destination / "config.json").write_text((source / "config.json").read_text())
    state = load_file(str(source / "model.safetensors"))
    if kind == "truncated":
        data = (source / "model.safetensors").read_bytes()
        (destination / "model.safetensors").write_bytes(data[: len(data) // 2])
        return destination
    if kind == "pickle":
        torch.save({k: torch.from_numpy(v) for k, v in state.items()},
                   str(destination / "pytorch_model.bin"))
        return destination
    if kind == "missing":
        del state["bert.encoder.layer.1.output.dense.weight"]
    elif kind == "extra":
        state["bert.encoder.layer.7.output.dense.weight"] = np.zeros((48, 80), "float32")
    elif kind == "shape":
        state["bert.encoder.layer.0.attention.self.query.weight"] = np.zeros((48, 47), "float32")
    save_file(state, str(destination / "model.safetensors"))
    return destination


@pytest.mark.parametrize(
    "kind, error, message",
    [
        ("missing", ValueError,
         r"missing from the checkpoint: \['encoder\.layer\.1\.output\.dense\.weight"),
        ("extra", ValueError,
         r"no place in the model: \['encoder\.layer\.7\.output\.dense\.weight'\]"),
        ("shape", ValueError,
         r"shape mismatches: \['encoder\.layer\.0\.attention\.self\.query\.weight: "
         r"checkpoint \(48, 47\), expected \(48, 48\)"),
        ("truncated", ValueError, r"model\.safetensors.*truncated or corrupt"),
        ("pickle", ValueError, r"pytorch_model\.bin, a pickle file.*allow_pickle=True"),
    ],
)
def test_bad_checkpoints_are_refused_and_nothing_is_written(kind, error, message,
                                                            hf_checkpoints, tmp_path):
    _, directory = hf_checkpoints["bert"]
    bad = _corrupted_copy(directory, tmp_path / "bad", kind)
    with pytest.raises(error, match=message):
        convert(bad, tmp_path / "out.keras")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad"]


def test_pickle_loads_with_the_opt_in(hf_checkpoints, converted, tmp_path):
    _, directory = hf_checkpoints["bert"]
    bad = _corrupted_copy(directory, tmp_path / "bin", "pickle")
    model, _ = keras_albert.from_pretrained(bad, heads=True, allow_pickle=True)
    for ours, reference in zip(model.weights, converted["bert"].weights, strict=True):
        np.testing.assert_array_equal(ours.numpy(), reference.numpy())


def test_refused_state_dict_leaves_the_model_unchanged(hf_checkpoints):
    hf_model, _ = hf_checkpoints["albert"]
    state = {name: value.numpy() for name, value in hf_model.state_dict().items()}
    model = PretrainingModel(Encoder(**encoder_config_from_transformers(hf_model.config)))
    before = [weight.numpy().copy() for weight in model.weights]
    # The decoder bias is a tied copy of predictions.bias: change both.
    wrong_shape = dict(state, **{"predictions.bias": np.zeros(5, "float32"),
                                 "predictions.decoder.bias": np.zeros(5, "float32")})
    with pytest.raises(ValueError, match=r"shape mismatches: \['predictions\.bias"):
        load_transformers_state_dict(model, wrong_shape)
    untied = dict(state, **{"predictions.decoder.weight": state[
        "albert.embeddings.word_embeddings.weight"] + 1})
    with pytest.raises(ValueError, match="'predictions.decoder.weight' differs from"):
        load_transformers_state_dict(model, untied)
    for old, weight in zip(before, model.weights, strict=True):
        np.testing.assert_array_equal(old, weight.numpy())
    load_transformers_state_dict(model, state)  # the intact state dict loads
    assert not np.array_equal(before[0], model.weights[0].numpy())


def test_activation_override_warns_and_architecture_override_is_refused(hf_checkpoints):
    _, directory = hf_checkpoints["albert"]
    with pytest.warns(UserWarning, match=r"uses activation='gelu_approximate', but "
                                         r"activation='gelu' was forced"):
        keras_albert.from_pretrained(directory, activation="gelu")
    with pytest.raises(ValueError, match=r"Cannot override \['hidden_dim'\]"):
        keras_albert.from_pretrained(directory, hidden_dim=64)
    # A key no Encoder has is a typo, not a fixed architecture: named, with the valid keys.
    with pytest.raises(ValueError, match=r"Unknown Encoder configuration key\(s\) "
                                         r"\['key_dim'\]\. Valid keys: activation, "):
        keras_albert.from_pretrained(directory, key_dim=128)
    # key_size is a real key, but the checkpoint's query/key kernels fix it.
    with pytest.raises(ValueError, match=r"Cannot override \['key_size'\]"):
        keras_albert.from_pretrained(directory, key_size=128)


def test_unusable_sources_get_clear_errors(hf_checkpoints, tmp_path, data_dir):
    with pytest.raises(FileNotFoundError, match="does not exist.*hf://owner/name"):
        keras_albert.from_pretrained(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="write 'hf://albert/albert-base-v2'"):
        keras_albert.from_pretrained("albert/albert-base-v2")
    roberta = tmp_path / "roberta"
    roberta.mkdir()
    (roberta / "config.json").write_text(json.dumps({"model_type": "roberta"}))
    save_file({"x": np.zeros(1, "float32")}, str(roberta / "model.safetensors"))
    with pytest.raises(ValueError, match="Unsupported transformers model_type 'roberta'"):
        keras_albert.from_pretrained(roberta)
    gpt2 = tmp_path / "gpt2_preset"
    gpt2.mkdir()
    (gpt2 / "config.json").write_text(json.dumps({"class_name": "GPT2Backbone", "config": {}}))
    with pytest.raises(ValueError, match="keras-hub preset of 'GPT2Backbone'; supported"):
        keras_albert.from_pretrained(gpt2)
    with pytest.raises(ValueError, match="has no masked-LM head"):
        keras_albert.from_pretrained(data_dir / "models" / "minilm-l6-h384-uncased",
                                     heads=True)
    with pytest.raises(FileExistsError, match="exists; pass overwrite=True"):
        convert(hf_checkpoints["bert"][1], tmp_path)


@pytest.mark.parametrize("offline", [False, True])
def test_hub_id_without_network_fails_fast_with_advice(offline, monkeypatch):
    if offline:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    else:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    start = time.monotonic()
    with pytest.raises(OSError, match="pass the local directory instead") as error:
        keras_albert.from_pretrained("hf://keras-albert-tests/no-such-model", timeout=15)
    assert time.monotonic() - start < 20
    if offline:
        assert "HF_HUB_OFFLINE" in str(error.value)


def test_a_hanging_hub_is_abandoned_after_the_timeout(monkeypatch):
    import huggingface_hub

    release = threading.Event()

    def hanging_download(*args, **kwargs):  # a connection that never answers
        release.wait(60)
        raise OSError("released")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", hanging_download)
    start = time.monotonic()
    try:
        with pytest.raises(OSError, match=r"no answer .* within 2 s.*pass the local directory"):
            keras_albert.from_pretrained("hf://albert/albert-base-v2", timeout=2)
    finally:
        release.set()
    assert time.monotonic() - start < 5


def test_real_checkpoint_to_huggingface_keeps_every_weight_and_the_vocabulary(data_dir,
                                                                            tmp_path):
    directory = data_dir / "models" / "minilm-l6-h384-uncased"
    convert(directory, tmp_path / "minilm")
    original = load_file(str(directory / "model.safetensors"))
    written = load_file(str(tmp_path / "minilm" / "model.safetensors"))
    # The old file also stores the position-id buffer, which is not a weight.
    assert sorted(written) == sorted(set(original) - {"embeddings.position_ids"})
    for name, value in written.items():
        np.testing.assert_array_equal(value, original[name], err_msg=name)
    _, info = transformers.AutoModel.from_pretrained(str(tmp_path / "minilm"),
                                                     output_loading_info=True)
    assert not any(info[key] for key in ("missing_keys", "unexpected_keys", "mismatched_keys"))
    sentences = ["Héllo, World! It's naïve.", "k-19 exploits our collective fear"]
    reference = transformers.BertTokenizerFast(vocab=str(directory / "vocab.txt"))
    written_tokenizer = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "minilm"))
    assert written_tokenizer(sentences)["input_ids"] == reference(sentences)["input_ids"]


def test_sentencepiece_vocabulary_travels_both_ways(data_dir, tmp_path):
    """An ALBERT directory with spiece.model gives a SentencePiece preprocessor, and
    the written directory carries the model file for transformers' tokenizer."""
    torch.manual_seed(9)
    config = transformers.AlbertConfig(vocab_size=30000, embedding_size=8, hidden_size=16,
                                       num_hidden_layers=1, num_attention_heads=2,
                                       intermediate_size=16)
    transformers.AlbertModel(config).save_pretrained(str(tmp_path / "albert"))
    spiece = data_dir / "vocab" / "albert_spiece_rebuilt.model"
    (tmp_path / "albert" / "spiece.model").write_bytes(spiece.read_bytes())

    encoder, preprocessor = keras_albert.from_pretrained(tmp_path / "albert", seq_length=10)
    ids = preprocessor(["hello, my dog is cute"])["input_word_ids"].numpy().tolist()
    assert ids == [[2, 10975, 15, 51, 1952, 25, 10901, 3, 0, 0]]  # albert-base-v2's ids
    convert(tmp_path / "albert", tmp_path / "written")
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "written"))
    assert tokenizer("hello, my dog is cute")["input_ids"] == ids[0][:8]


# === The command line ===


def _cli():
    script = pathlib.Path(sys.executable).parent / "keras-albert"
    assert script.exists(), "the keras-albert console script is not installed"
    return str(script)


def test_cli_converts_to_a_keras_file_with_identical_outputs(hf_checkpoints, converted,
                                                             tmp_path):
    _, directory = hf_checkpoints["albert"]
    destination = tmp_path / "albert.keras"
    result = subprocess.run([_cli(), "convert", str(directory), str(destination), "--heads"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    loaded = keras.saving.load_model(str(destination))
    assert isinstance(loaded, PretrainingModel)
    batch = _batch(HF_MODELS["albert"][1]["vocab_size"], seed=4)
    ours, reference = _ours(loaded, batch), _ours(converted["albert"], batch)
    for key in ("mlm_logits", "sop_logits"):
        np.testing.assert_array_equal(ours[key].numpy(), reference[key].numpy())
    np.testing.assert_array_equal(ours["encoder"]["sequence_output"].numpy(),
                                  reference["encoder"]["sequence_output"].numpy())


def test_cli_writes_a_huggingface_directory_transformers_loads(hf_checkpoints, tmp_path):
    hf_model, directory = hf_checkpoints["distilbert"]
    destination = tmp_path / "distilbert_hf"
    result = subprocess.run([_cli(), "convert", str(directory), str(destination),
                             "--format", "hf"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    reloaded = transformers.AutoModel.from_pretrained(str(destination)).eval()
    assert type(reloaded).__name__ == "DistilBertModel"
    ids, mask, _, _ = _batch(HF_MODELS["distilbert"][1]["vocab_size"], seed=5)
    inputs = {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask)}
    with torch.no_grad():
        expected = hf_model.distilbert(**inputs).last_hidden_state.numpy()
        actual = reloaded(**inputs).last_hidden_state.numpy()
    difference = np.abs(actual - expected)[mask.astype(bool)].max()
    assert difference <= ENCODER_TOLERANCE


def test_cli_refuses_a_pickle_without_the_flag(hf_checkpoints, tmp_path):
    bad = _corrupted_copy(hf_checkpoints["bert"][1], tmp_path / "bin", "pickle")
    result = subprocess.run([_cli(), "convert", str(bad), str(tmp_path / "out.keras")],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "--allow-pickle" in result.stderr
    assert not (tmp_path / "out.keras").exists()
