"""``python -m densim``: the ``densim`` command."""

from densim.cli import main

main()
