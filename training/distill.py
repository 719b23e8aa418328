"""The `keras-albert distill` run: a fine-tuned classifier -> a shallower student, files
to files.

The pieces it runs live with the models: `keras_albert.models.student_from_teacher`
(the student encoder, from the teacher's layers), `keras_albert.models.Distiller` (the
`keras.Model` that trains it with DistilBERT's three loss terms) and
`keras_albert.models.distillation_losses` (the terms themselves).
"""

import pathlib

from keras_albert.conversion.pretrained import load
from keras_albert.metrics import evaluate_predictions
from keras_albert.models import Distiller, SequenceClassifier, student_from_teacher
from keras_albert.training.finetune import (
    fit_on_task_stream,
    packing_settings,
    predict_task,
    preprocessor_as_trained,
)
from keras_albert.training.run_directory import read_summary

__all__ = ["distill"]


def _check_teacher_fits(teacher, teacher_file, data):
    """Refuses data the teacher's head does not fit, before the student is built: the
    task must match, and the classes too (ids: no more than the teacher's; names: as
    many)."""
    fits = teacher.task == data.task and (
        data.num_classes == teacher.num_classes
        or (data.label_names is None and data.num_classes < teacher.num_classes))
    if not fits:
        def outputs(task, count):
            return "1 output (regression)" if task == "regression" else f"{count} classes"

        raise ValueError(
            f"The teacher {teacher_file} has {outputs(teacher.task, teacher.num_classes)} "
            f"but the training data has {outputs(data.task, data.num_classes)}: distil on "
            "data labelled like the teacher's.")


def distill_fingerprint(teacher_file, teacher, student, preprocessor, temperature, alpha_ce,
                        alpha_mlm, alpha_cos):
    """What a distillation run's result depends on besides its data, steps and optimizer
    (which `fit_on_task_stream` adds): the teacher (its file and model), the student's
    model, the loss terms' weights and temperature, the sequence length."""
    from keras_albert.training.fingerprint import model_settings, model_source_settings

    return {"teacher": model_source_settings(teacher_file),
            "teacher_model": model_settings(teacher), "student": model_settings(student),
            "temperature": temperature, "alpha_ce": alpha_ce, "alpha_mlm": alpha_mlm,
            "alpha_cos": alpha_cos, "seq_length": preprocessor.seq_length,
            **packing_settings(preprocessor)}


def distill(
    teacher,
    train_data,
    output_dir,
    optimizer,
    student_layers=None,
    teacher_layers=None,
    temperature=2.0,
    alpha_ce=5.0,
    alpha_mlm=2.0,
    alpha_cos=1.0,
    seq_length=128,
    epochs=3,
    batch_size=32,
    eval_data=None,
    seed=0,
    max_steps=None,
    resume=True,
    checkpoint_every=None,
    steps_per_execution=1,
    jit_compile=False,
    verbose="auto",
    overwrite=False,
    fingerprint=None,
    **student_overrides,
):
    """Distils a fine-tuned classifier into a shallower student, from files to files.

    `teacher` is a `keras-albert finetune` output directory or its `model.keras` (a
    `SequenceClassifier` with its tokenizer files beside it). The student is
    `student_from_teacher(teacher.encoder, student_layers, teacher_layers)` under the
    teacher's head (copied), keeping the pooler, and token types when `train_data` has
    text pairs; `student_overrides` go to the student's config (`remat`, `dtype`).
    It trains with `Distiller` (DistilBERT's three terms) on `train_data`, with the
    checkpoints, exact resumption and logs of `keras_albert.training.finetune.finetune` (whose
    arguments these are, `overwrite` included), then writes `output_dir/model.keras`
    (the student alone), its tokenizer and `summary.json`; with `eval_data`, the
    summary compares teacher and student. Call it inside `strategy.scope()` to
    distribute. Returns the summary. A checkpoint is continued only by a run with the
    same fingerprint (`distill_fingerprint`, the data, steps and optimizer, and the
    caller's `fingerprint` dict: the command line adds its files).

        summary = distill("runs/sst2_teacher", train, "runs/sst2_student",
                          keras.optimizers.AdamW(1e-4), max_steps=200, eval_data=dev)
    """
    if train_data.task not in ("classification", "regression"):
        raise ValueError("distill supports classification and regression teachers; "
                         f"{train_data.task} distillation is not implemented.")
    teacher_path = pathlib.Path(teacher)
    teacher_file = teacher_path / "model.keras" if teacher_path.is_dir() else teacher_path
    if not teacher_file.is_file():
        raise FileNotFoundError(f"No teacher model at {teacher_file}.")
    teacher, preprocessor = load(teacher_file, seq_length=seq_length, task_model=True)
    # Texts cut as the teacher was trained (finetune --truncation head_tail).
    preprocessor = preprocessor_as_trained(preprocessor, read_summary(teacher_file))
    if not isinstance(teacher, SequenceClassifier):
        raise ValueError(f"{teacher_file} is not a fine-tuned SequenceClassifier.")
    _check_teacher_fits(teacher, teacher_file, train_data)
    # The teacher's head was trained on tanh(pooler(first token)): keep the pooler,
    # and keep token types when the task has text pairs.
    student_encoder = student_from_teacher(
        teacher.encoder, num_layers=student_layers, teacher_layers=teacher_layers,
        pooler=teacher.encoder.use_pooler,
        token_types=train_data.num_segments == 2 and teacher.encoder.num_segments > 0,
        **student_overrides)
    student = SequenceClassifier(student_encoder, **{
        key: value for key, value in teacher.get_config().items()
        if key in ("num_classes", "dropout", "hidden_dim", "pooling", "task")})
    student.head.set_weights(teacher.head.get_weights())
    distiller = Distiller(teacher, student, temperature=temperature, alpha_ce=alpha_ce,
                          alpha_mlm=alpha_mlm, alpha_cos=alpha_cos)

    def compile_model(chosen_optimizer, steps_per_execution):
        distiller.compile(optimizer=chosen_optimizer, jit_compile=jit_compile,
                          steps_per_execution=steps_per_execution)

    run = fit_on_task_stream(
        distiller, compile_model, optimizer, train_data, preprocessor, output_dir, epochs=epochs,
        batch_size=batch_size, seed=seed, max_steps=max_steps, resume=resume,
        checkpoint_every=checkpoint_every, steps_per_execution=steps_per_execution,
        verbose=verbose, overwrite=overwrite, fingerprint={
            **distill_fingerprint(teacher_file, teacher, student, preprocessor, temperature,
                                  alpha_ce, alpha_mlm, alpha_cos),
            **(fingerprint or {})})
    run_directory = run.pop("run_directory")
    summary = {# What an export needs to rebuild the serving contract, as finetune writes.
               "task": train_data.task,
               "text_inputs": train_data.num_segments,
               "seq_length": preprocessor.seq_length,
               **packing_settings(preprocessor),
               "label_names": list(train_data.label_names) if train_data.label_names
               else None,
               "teacher_layers": teacher.encoder.num_layers,
               "student_layers": student_encoder.num_layers,
               "teacher_params": int(teacher.encoder.count_params()),
               "student_params": int(student_encoder.count_params()),
               **run}
    if eval_data is not None:
        for name, model in (("teacher", teacher), ("student", student)):
            summary[f"{name}_eval"] = evaluate_predictions(
                train_data.task, predict_task(model, eval_data, preprocessor),
                eval_data.labels)
    run_directory.finish(student, summary)
    return summary
