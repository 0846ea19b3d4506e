"""Pure data operators on Arrow batches (see ``operators.base`` for the contract). No Ray imports here."""
from operators.base import REASON, DETAIL, Dedup, Filter, Operator, ParameterError, Resources
from operators.dedup import ExactDedup
from operators.minhash import MinHashDedup
from operators.text import LengthFilter, Normalize, RequireText, normalize_text

__all__ = ["REASON", "DETAIL", "Dedup", "ExactDedup", "Filter", "LengthFilter", "MinHashDedup", "Normalize", "Operator",
           "ParameterError", "RequireText", "Resources", "normalize_text"]
