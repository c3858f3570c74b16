"""The built-in arithmetic task: the demo ``crucible-train train`` runs with no dataset.

``task`` (the problems, their split and defaults), ``evaluator`` (held-out greedy
``test/accuracy``), ``env`` (the RL and distillation environments) and ``pairs`` (DPO
preference pairs). Small enough to learn on 2 CPU cores in minutes.
"""
