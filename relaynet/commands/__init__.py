"""One module per subcommand group of the ``relaynet`` command."""
