"""Entry points: the ``crucible-train`` command and the library's top-level facades.

The top layer of the package: it may import the container and everything below it, and
nothing below it imports it. ``cli/`` holds one module per command; ``planning`` (with
``run_dirs``) decides a training run before anything is built; ``progress``, ``plots``
and ``model_facts`` serve the ``train`` command's display; ``logger_facade`` is the
``create_logger`` API for scripts and notebooks.
"""
