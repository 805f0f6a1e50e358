from scbjax.app.cli import entry

entry()
