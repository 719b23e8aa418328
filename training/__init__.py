"""Training pipelines: data, pretraining, fine-tuning, distillation, tf.distribute strategy.

Text -> batches: `corpus`, `vocab`, `masking`, `pretraining_examples`,
`pretraining_data`; `task_records`, `task_files` (with `task_labels`), `tfds_tasks`,
`length_buckets`, `task_dataset`.
Batches -> trained models: `pretrain`, `finetune`, `distill` (with `metrics`,
`callbacks`, `strategy`, `resume`, `resumable_streams`), in the run directory
`run_directory` lays out. `task_sources` reads what a user names (a file or
`tfds:NAME`). `demo` runs the whole pipeline. The command line
(`keras_albert.cli`) sits above all of this and calls it.
"""
