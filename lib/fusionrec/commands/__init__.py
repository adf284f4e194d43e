"""One module per ``fusionrec`` sub-command (see :mod:`fusionrec.cli`)."""
