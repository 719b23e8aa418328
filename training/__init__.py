"""Training pipelines: data, pretraining, fine-tuning, distillation, tf.distribute strategy.

Text -> batches: `corpus`, `vocab`, `masking`, `pretraining_examples`,
`pretraining_data`; `task_records`, `task_files` (with `task_labels`), `tfds_tasks`,
`token_span_records`, `token_span_files`, `token_span_encoding` (token and span QA
data), `length_buckets`, `task_dataset`; `task_sources` reads what a user names (a
file or `tfds:NAME`).
Batches -> trained models: `pretrain`, `finetune`, `distill` (with `callbacks`,
`strategy`, `resume`, `resumable_streams`), each writing the layout `run_directory`
owns. `demo` runs the whole pipeline. The command line (`keras_albert.cli`) sits above
all of this and calls it.
"""
