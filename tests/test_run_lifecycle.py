"""A run directory holds one run, and no kill loses a run.

- A process killed in any phase of `keras-albert finetune | pretrain | distill`
  (training, the final evaluation, saving the model) leaves a checkpoint that the
  same command with `--resume` continues (after the training, with zero more steps:
  it evaluates and saves), and the resumed model equals an uninterrupted run's
  (<= 1e-6). The kills are `os._exit(9)` (no cleanup, as SIGKILL) injected at each
  phase into a child process that runs the real command line; the three pipelines'
  chains run side by side, and the runs that are not killed run in this process,
  to keep the file short.
- A folder holding another run is refused with one line unless `--overwrite`, which
  clears that run's files (so a BERT trained where an ALBERT run was tokenizes with
  BERT's ids) and keeps unrelated ones.
- `keras_albert.load` refuses a folder holding both `spiece.model` and `vocab.txt`.
"""

import json
import pathlib
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import subprocess_env
from test_resume import ROOT, _max_difference, _weights

TOTAL_STEPS, KILL_STEP = 10, 6  # 2 epochs of 5 steps, checkpoints every 3: 6 is mid-epoch

# Runs the command line (argv after the phase and step) with a kill injected.
KILLED_CHILD = r"""
import os
import sys

phase, kill_step, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]

import keras

from keras_albert.cli import main
from keras_albert.training import distill, finetune, pretrain, resume, run_directory


def die():
    os._exit(9)  # as SIGKILL: no exception, no cleanup


if phase == "training":  # right after the checkpoint of `kill_step`
    save_checkpoint = resume.ChiefBackupAndRestore._save

    def save_checkpoint_then_die(self):
        save_checkpoint(self)
        if self.step == kill_step:
            die()

    resume.ChiefBackupAndRestore._save = save_checkpoint_then_die
else:
    trained = []
    fit = run_directory.RunDirectory.fit

    def fit_and_note(self, *args, **kwargs):
        result = fit(self, *args, **kwargs)
        trained.append(True)
        return result

    run_directory.RunDirectory.fit = fit_and_note
    if phase == "evaluation":  # the final evaluation (not pretraining's "before" one)
        def evaluated_then_die(evaluate):
            def run(*args, **kwargs):
                result = evaluate(*args, **kwargs)
                if trained:
                    die()
                return result
            return run

        finetune.predict_task = evaluated_then_die(finetune.predict_task)
        distill.predict_task = evaluated_then_die(distill.predict_task)
        pretrain.evaluate_pretrainer = evaluated_then_die(pretrain.evaluate_pretrainer)
    else:  # saving: the model's bytes are written, before anything else
        save_model = keras.Model.save

        def save_model_then_die(self, *args, **kwargs):
            save_model(self, *args, **kwargs)
            die()

        keras.Model.save = save_model_then_die
sys.exit(main(argv))
"""

PHASES = ("training", "evaluation", "saving")


@pytest.fixture(scope="module")
def vocab(data_dir):
    return data_dir / "vocab" / "bert_uncased_vocab.txt"


@pytest.fixture(scope="module")
def inputs(data_dir, vocab, tmp_path_factory):
    """A small SST-2 task file, a small corpus and a bert_tiny teacher folder."""
    import gzip

    from keras_albert.conversion.huggingface import write_tokenizer
    from keras_albert.conversion.pretrained import tokenizer_from_file
    from keras_albert.models import Encoder, SequenceClassifier

    folder = tmp_path_factory.mktemp("inputs")
    with open(data_dir / "sst2" / "train.tsv", encoding="utf-8") as handle:
        (folder / "train.tsv").write_text("".join(next(handle) for _ in range(65)),
                                          encoding="utf-8")
    with gzip.open(data_dir / "corpus" / "python311_docs.txt.gz", "rt", encoding="utf-8") as f:
        (folder / "corpus.txt").write_text("".join(next(f) for _ in range(1500)),
                                           encoding="utf-8")
    teacher = folder / "teacher"
    teacher.mkdir()
    SequenceClassifier(Encoder.from_preset("bert_tiny", seed=3), num_classes=2).save(
        teacher / "model.keras")
    write_tokenizer(tokenizer_from_file(vocab), teacher)
    return folder


def _arguments(pipeline, inputs, vocab, output):
    common = ["--batch", "8", "--checkpoint-every", "3", "--seed", "5", "--output",
              str(output), "--quiet"]
    task = ["--train", str(inputs / "train.tsv"), "--holdout", "0.25", "--epochs", "2",
            "--max-steps", str(TOTAL_STEPS), "--seq", "16"]
    if pipeline == "finetune":
        return ["finetune", "--model", "bert_tiny", "--vocab", str(vocab), *task,
                "--learning-rate", "2e-3", *common]
    if pipeline == "distill":
        return ["distill", "--teacher", str(inputs / "teacher"), *task, *common]
    return ["pretrain", "--corpus", str(inputs / "corpus.txt"), "--vocab", str(vocab),
            "--preset", "bert_tiny", "--steps", str(TOTAL_STEPS), "--steps-per-epoch", "5",
            "--seq", "32", "--optimizer", "adafactor", "--learning-rate", "1e-2",
            "--eval-steps", "2", *common]


def _start_killed(phase, args):
    return subprocess.Popen([sys.executable, "-c", KILLED_CHILD, phase, str(KILL_STEP), *args],
                            env=subprocess_env(), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _checkpoint_step(output):
    """The step of the newest complete checkpoint in `output/backup`, or None."""
    backup = pathlib.Path(output) / "backup"
    try:
        name = (backup / "latest").read_text().strip()
        return json.loads((backup / name / "state.json").read_text())["step"]
    except (OSError, ValueError):
        return None


def _kill_in_every_phase(pipeline, inputs, vocab, output):
    """A run killed in training, resumed with `--resume` and killed in the final
    evaluation, resumed and killed while saving; what each kill left."""
    stages = []
    for phase in PHASES:
        args = _arguments(pipeline, inputs, vocab, output)
        process = _start_killed(phase, args if phase == "training" else [*args, "--resume"])
        _, stderr = process.communicate(timeout=600)
        stages.append({"phase": phase, "returncode": process.returncode,
                       "checkpoint_step": _checkpoint_step(output),
                       "model_saved": (output / "model.keras").exists(),
                       "stderr": stderr[-3000:]})
    return stages


def _summary(output):
    return json.loads((output / "summary.json").read_text())


@pytest.fixture(scope="module")
def killed_runs(inputs, vocab, tmp_path_factory):
    """For each pipeline: the kills of `_kill_in_every_phase` (the three pipelines'
    chains side by side), an uninterrupted run meanwhile, then the last `--resume`.
    The uninterrupted and the last runs call the command line in this process (it
    has TensorFlow loaded already); `main` seeds every run alike."""
    from keras_albert.cli import main

    pipelines = ("finetune", "pretrain", "distill")
    folders = {name: tmp_path_factory.mktemp(name) for name in pipelines}
    outcomes = {name: {"reference_dir": folders[name] / "reference",
                       "killed_dir": folders[name] / "killed"} for name in pipelines}
    with ThreadPoolExecutor(len(pipelines)) as pool:
        chains = {name: pool.submit(_kill_in_every_phase, name, inputs, vocab,
                                    outcomes[name]["killed_dir"]) for name in pipelines}
        for name, outcome in outcomes.items():
            outcome["reference"] = main(_arguments(name, inputs, vocab,
                                                   outcome["reference_dir"]))
        for name, chain in chains.items():
            outcomes[name]["stages"] = chain.result()
    for name, outcome in outcomes.items():
        outcome["resumed"] = main([*_arguments(name, inputs, vocab, outcome["killed_dir"]),
                                   "--resume"])
    return outcomes


@pytest.mark.parametrize("pipeline", ["finetune", "pretrain", "distill"])
def test_a_kill_in_any_phase_leaves_a_run_that_resume_completes(killed_runs, pipeline):
    outcome = killed_runs[pipeline]
    for stage in outcome["stages"]:
        # Killed (not failed), with the checkpoint left to continue from and no model
        # (nor part of one) under the model's name.
        assert stage["returncode"] == 9, stage
        expected = KILL_STEP if stage["phase"] == "training" else TOTAL_STEPS
        assert stage["checkpoint_step"] == expected, stage
        assert not stage["model_saved"], stage
    assert outcome["reference"] == 0 and outcome["resumed"] == 0
    killed_dir = outcome["killed_dir"]
    reference, resumed = _summary(outcome["reference_dir"]), _summary(killed_dir)
    # The training was done: the last resume ran zero steps, evaluated and saved.
    assert resumed["resumed_at_step"] == TOTAL_STEPS == resumed["steps"]
    assert reference["resumed_at_step"] == 0
    for key in ("eval", "after", "student_eval"):  # the final evaluation ran again
        if key in reference:
            assert resumed[key] == pytest.approx(reference[key], abs=1e-6, nan_ok=True)
    difference = _max_difference(_weights(outcome["reference_dir"] / "model.keras"),
                                 _weights(killed_dir / "model.keras"))
    print(f"{pipeline}: killed while training, evaluating and saving, resumed: max "
          f"|difference| {difference:.3g}")
    assert difference <= 1e-6, difference
    # A complete run: model, tokenizer and summary; no checkpoint, no scratch.
    names = sorted(path.name for path in killed_dir.iterdir())
    assert names == ["logs", "model.keras", "summary.json", "tokenizer_config.json",
                     "vocab.txt"], names


def test_a_folder_holding_another_run_is_refused_and_overwrite_replaces_it(
        inputs, vocab, data_dir, tmp_path, capsys):
    """Where an ALBERT run was (spiece.model, logs, summary), a BERT fine-tuning is
    refused with one line; with `--overwrite` it replaces that run (so the folder's
    tokenizer is BERT's) and leaves unrelated files alone."""
    import keras_albert
    from keras_albert.cli import main

    output = tmp_path / "run"
    (output / "logs" / "train").mkdir(parents=True)
    (output / "logs" / "train" / "events.out.tfevents.old").write_text("old run")
    shutil.copy(data_dir / "vocab" / "albert_spiece_rebuilt.model", output / "spiece.model")
    (output / "tokenizer_config.json").write_text('{"do_lower_case": true}')
    (output / "summary.json").write_text('{"steps": 30000}')
    (output / "notes.txt").write_text("mine")
    args = ["finetune", "--model", "bert_tiny", "--vocab", str(vocab), "--train",
            str(inputs / "train.tsv"), "--epochs", "1", "--max-steps", "2", "--batch", "8",
            "--seq", "16", "--output", str(output), "--quiet"]
    assert main(args) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("keras-albert finetune: ") and "\n" not in error, error
    assert "holds a finished run" in error and "--overwrite" in error, error
    assert (output / "spiece.model").exists() and not (output / "model.keras").exists()

    assert main([*args, "--overwrite"]) == 0
    names = sorted(path.name for path in output.iterdir())
    assert names == ["logs", "model.keras", "notes.txt", "summary.json",
                     "tokenizer_config.json", "vocab.txt"], names
    assert not (output / "logs" / "train" / "events.out.tfevents.old").exists()
    # What `keras-albert export` packs: the folder's model with its tokenizer.
    _, preprocessor = keras_albert.load(output, task_model=True, seq_length=8)
    ids = preprocessor(["hello world"])["input_word_ids"].numpy()[0]
    assert ids[:4].tolist() == [101, 7592, 2088, 102]  # [CLS] hello world [SEP], BERT's


def test_start_refuses_another_run_unless_it_resumes_or_overwrites(tmp_path):
    from keras_albert.training.run_directory import RunDirectory, check_new_run

    (tmp_path / "notes.txt").write_text("mine")
    check_new_run(tmp_path)  # unrelated files are no run
    (tmp_path / "logs").mkdir()
    with pytest.raises(FileExistsError, match=r"holds another run's files \(logs\)"):
        check_new_run(tmp_path, resume="auto")
    check_new_run(tmp_path, resume="auto", chief=False)  # the chief may be writing logs
    checkpoint = tmp_path / "backup" / "ckpt-000000004"
    checkpoint.mkdir(parents=True)
    (checkpoint / "state.json").write_text('{"step": 4}')
    (tmp_path / "backup" / "latest").write_text("ckpt-000000004")
    assert check_new_run(tmp_path, resume="auto") is False  # continues the checkpoint
    # --no-resume starts an interrupted run over, as it says; without a checkpoint to
    # continue or a request to start over, the folder is refused.
    assert check_new_run(tmp_path, resume="restart") is True
    with pytest.raises(FileExistsError, match=r"an interrupted run \(continue it with "
                       r"--resume\) \(logs, backup\): pass --overwrite"):
        check_new_run(tmp_path, resume=False)
    with pytest.raises(ValueError, match="cannot also continue"):
        check_new_run(tmp_path, resume="require", overwrite=True)
    (tmp_path / "model.keras").write_text("")
    (tmp_path / ".partial-x").mkdir()
    with pytest.raises(FileExistsError, match="holds a finished run"):
        check_new_run(tmp_path, resume=False)
    RunDirectory(tmp_path).start(resume="restart", overwrite=True)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["notes.txt"]


def test_a_folder_with_two_vocabularies_is_refused(vocab, data_dir, tmp_path):
    import keras_albert
    from keras_albert.conversion.huggingface import tokenizer_from_directory, write_tokenizer
    from keras_albert.conversion.pretrained import tokenizer_from_file
    from keras_albert.models import Encoder

    Encoder.from_preset("bert_tiny", seed=1).save(tmp_path / "model.keras")
    write_tokenizer(tokenizer_from_file(vocab), tmp_path)
    shutil.copy(data_dir / "vocab" / "albert_spiece_rebuilt.model", tmp_path / "spiece.model")
    message = "holds two vocabularies, spiece.model and vocab.txt"
    with pytest.raises(ValueError, match=message):
        keras_albert.load(tmp_path)
    with pytest.raises(ValueError, match=message):
        tokenizer_from_directory(tmp_path)
    # Naming the model's vocabulary settles it.
    _, preprocessor = keras_albert.load(tmp_path, vocab=tmp_path / "vocab.txt", seq_length=8)
    assert preprocessor(["hello world"])["input_word_ids"].numpy()[0][:4].tolist() == [
        101, 7592, 2088, 102]
