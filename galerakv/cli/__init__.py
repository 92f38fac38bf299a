"""The ``galerakv`` command line."""
