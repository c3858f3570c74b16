"""Training loops over the ports: supervised fine-tuning, RL, DPO and on-policy distillation.

Every loop talks only to ports (TrainingClient, SamplingClient, MetricsSink, ...), keeps its
resumable checkpoint records (and whatever else it stores in the run directory) through a
:class:`~crucible_train.ports.run_store.RunStore` and reports progress through a
:class:`~crucible_train.core.training.progress.Progress`, so the same code runs on the local
torch engine and on Tinker. The loops know no task: their data, environments
(:mod:`~crucible_train.core.training.envs`) and evaluators come from a recipe
(:mod:`crucible_train.recipes`).
"""
