"""``python -m paramlens``: the command line (:func:`paramlens.cli.main`)."""

from paramlens.cli import main

main()
