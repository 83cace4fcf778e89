"""What training, search and export all need to judge a subnet: the evaluation data a run set aside,
its preprocessing, subnet accuracy after BN recalibration, and the torchrun process-group helpers.

It sits below ``train``, ``search`` and ``export`` so that none of them needs another: deploying or
searching a supernet never imports the trainer.
"""
from .accuracy import accuracy, reference_subnets, subnet_accuracy
from .data import DEFAULT_DATA_SOURCE, EvalData, checkpoint_eval_data, load_eval_data, recorded_preprocessing
from .distributed import Launch, barrier, choose_device, launched_by_torchrun, process_group
from .preprocessing import Preprocessing

__all__ = ["DEFAULT_DATA_SOURCE", "EvalData", "Launch", "Preprocessing", "accuracy", "barrier", "checkpoint_eval_data",
           "choose_device",
           "launched_by_torchrun", "load_eval_data", "process_group", "recorded_preprocessing", "reference_subnets",
           "subnet_accuracy"]
