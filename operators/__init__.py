"""Pure data operators on Arrow batches (see ``operators.base`` for the contract). No Ray imports here."""
from operators.base import DETAIL, REASON, SOURCE, Dedup, Filter, Operator, ParameterError, Resources
from operators.bias import BiasMeasure, CounterfactualSwap, Rebalance, RebalanceSample, counterfactual_rows
from operators.boilerplate import BoilerplateLines
from operators.c4_fineweb import C4Quality, FineWebQuality
from operators.classifier import FastTextScore
from operators.decontaminate import Decontaminate
from operators.dedup import ExactDedup
from operators.gopher import GopherQuality, GopherRepetition
from operators.langid import LanguageID
from operators.minhash import MinHashDedup
from operators.pii import RedactPII
from operators.sample import HashSample
from operators.text import LengthFilter, Normalize, RequireText, normalize_text
from operators.toxicity import Toxicity

__all__ = ["DETAIL", "REASON", "BiasMeasure", "BoilerplateLines", "C4Quality", "CounterfactualSwap", "FineWebQuality",
           "GopherQuality", "GopherRepetition", "HashSample", "Rebalance", "RebalanceSample",
           "counterfactual_rows", "Decontaminate", "Dedup", "ExactDedup", "FastTextScore", "Filter",
           "LanguageID", "LengthFilter", "MinHashDedup", "Normalize", "Operator", "ParameterError", "RedactPII",
           "RequireText", "Resources", "Toxicity", "normalize_text"]
