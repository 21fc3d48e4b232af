"""``python -m tantra_cli``: runs the ``tantra`` command line (``tantra_cli.app.main``)."""

from tantra_cli.app import main

main()
