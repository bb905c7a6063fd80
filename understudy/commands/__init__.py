"""One module per ``understudy`` subcommand, listed in ``understudy.cli.COMMAND_MODULES``."""
