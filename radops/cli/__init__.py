"""The ``radops`` command line: one module per command group."""
