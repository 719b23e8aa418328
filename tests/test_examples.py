"""The examples run, and the real-checkpoint one agrees with transformers."""

import importlib.util
import pathlib
import subprocess
import sys

import torch
import transformers

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


def _load_example(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sentence_embeddings_match_transformers(data_dir):
    example = _load_example("sentence_embeddings")
    model_dir = data_dir / "models" / "minilm-l6-h384-uncased"
    encoder, preprocessor = example.load(model_dir)
    sentences = example.DEFAULT_SENTENCES
    ours = example.embed(encoder, preprocessor, sentences)

    tokenizer = transformers.BertTokenizerFast(vocab=str(model_dir / "vocab.txt"))
    model = transformers.BertModel.from_pretrained(str(model_dir)).eval()
    batch = tokenizer(sentences, padding=True, return_tensors="pt")
    with torch.no_grad():
        tokens = model(**batch).last_hidden_state
    mask = batch["attention_mask"][..., None].float()
    expected = torch.nn.functional.normalize((tokens * mask).sum(1) / mask.sum(1), dim=-1)
    cosine = (ours * expected.numpy()).sum(axis=1)
    assert cosine.min() >= 0.99999

    similarity = ours @ ours.T
    # Paraphrases (0, 1) and (2, 3) are closer than unrelated pairs.
    assert similarity[0, 1] > similarity[0, 2] + 0.3
    assert similarity[2, 3] > similarity[1, 3] + 0.3


def test_sentence_embeddings_script_reports_a_clear_error_for_a_bad_directory(tmp_path):
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "sentence_embeddings.py"), "--model-dir", str(tmp_path)],
        capture_output=True, text=True,
    )
    assert result.returncode != 0
    assert f"{tmp_path / 'config.json'} not found" in result.stderr
