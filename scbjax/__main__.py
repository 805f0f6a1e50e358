from scbjax.cli import entry

entry()
