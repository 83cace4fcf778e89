"""Progressive-shrinking training of OFA supernets: schedules, the trainer, evaluation, checkpoints, torchrun DDP."""
from ..eval import Preprocessing, accuracy, reference_subnets, subnet_accuracy
from .run import TrainOptions, train_supernet
from .schedule import SCHEDULES, Phase, crop_padding, make_schedule
from .standalone import StandaloneResult, train_standalone
from .trainer import SubnetsForward, TrainConfig, Trainer, cosine_lr, param_groups, soft_cross_entropy

__all__ = ["SCHEDULES", "Phase", "Preprocessing", "StandaloneResult", "SubnetsForward", "TrainConfig", "TrainOptions",
           "Trainer", "accuracy", "cosine_lr", "crop_padding", "make_schedule", "param_groups", "reference_subnets",
           "soft_cross_entropy", "subnet_accuracy", "train_standalone", "train_supernet"]
