"""Training pipelines: data, pretraining, fine-tuning, distillation, tf.distribute strategy.

Text -> batches: `corpus`, `vocab`, `pretraining_data`, `task_data`.
Batches -> trained models: `pretrain`, `finetune`, `distill` (with `metrics`,
`callbacks`, `strategy`). `demo` runs the whole pipeline; `commands` is the CLI.
"""
