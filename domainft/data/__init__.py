"""Reading, checking and splitting labelled data."""
from domainft.data.prepare import DataBundle, prepare_examples
from domainft.data.readers import Example, TextFields, read_examples

__all__ = ["DataBundle", "Example", "TextFields", "prepare_examples", "read_examples"]
