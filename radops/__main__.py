"""``python -m radops``: the same as the ``radops`` command."""

from radops.cli.app import main

main()
