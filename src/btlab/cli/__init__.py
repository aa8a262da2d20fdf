"""The ``btlab`` command line (typer + rich): a thin caller of the Python API."""
