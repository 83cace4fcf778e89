"""Search: the accuracy predictor, latency-constrained evolution, gradient search in a supernet, Pareto fronts."""
from .accuracy_predictor import AccuracyPredictor
from .costs import op_cost_predictor, smallest
from .encoding import feature_count, one_hot_features
from .evolution import Candidate, SearchResult, evolution_search
from .pareto import ParetoArchive, pareto_front

__all__ = ["AccuracyPredictor", "Candidate", "ParetoArchive", "SearchResult", "evolution_search", "feature_count",
           "one_hot_features", "op_cost_predictor", "pareto_front", "smallest"]
