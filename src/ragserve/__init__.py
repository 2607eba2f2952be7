"""ragserve: grounded answers with citations over your documents."""

__version__ = "0.1.0"
