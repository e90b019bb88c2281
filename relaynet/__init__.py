"""The ``relaynet`` command: one subcommand group per role, composing the packages."""
