"""Entry points: the ``crucible-train`` command and the library's top-level facades.

The top layer of the package: it may import the container and everything below it;
nothing imports it.
"""
