"""Search: the accuracy predictor, latency-constrained evolution, gradient search in a supernet, Pareto fronts."""
from .accuracy_predictor import AccuracyPredictor
from .costs import minimize_additive, op_cost_predictor, smallest
from .dataset import AccuracyDataset, build_accuracy_dataset
from .encoding import feature_count, one_hot_features
from .evolution import Candidate, SearchResult, evolution_search
from .gradient import PENALTIES, GradientSearchResult, gradient_search, latency_penalty
from .pareto import ParetoArchive, pareto_front

__all__ = ["PENALTIES", "AccuracyDataset", "AccuracyPredictor", "Candidate", "GradientSearchResult", "ParetoArchive",
           "SearchResult", "build_accuracy_dataset", "evolution_search", "feature_count", "gradient_search",
           "latency_penalty", "minimize_additive", "one_hot_features", "op_cost_predictor", "pareto_front", "smallest"]
