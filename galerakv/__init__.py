"""galerakv: a replicated key-value web service on SQLite or MariaDB Galera Cluster."""

__version__ = "0.1.0"
__all__ = ["__version__"]
