"""Ingestion: sniff a file's type, extract normalised text per page, cut it into chunks."""

from ragserve.ingest.chunking import Chunker
from ragserve.ingest.loaders import load_bytes, load_path
from ragserve.ingest.sniff import SUPPORTED_TYPES, sniff

__all__ = ["SUPPORTED_TYPES", "Chunker", "load_bytes", "load_path", "sniff"]
