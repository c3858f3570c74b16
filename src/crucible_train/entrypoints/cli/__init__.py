"""The ``crucible-train`` command, one module per subcommand."""
