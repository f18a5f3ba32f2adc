"""The ``jobqueue`` command: one entry point over every component's subcommands."""
