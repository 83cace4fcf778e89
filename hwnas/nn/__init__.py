"""Elastic layers, the OFA MobileNetV3 supernet, static ops and extracted subnets (needs torch)."""
from .bn import recalibrate_bn
from .checkpoint import load_supernet, save_supernet, supernet_extra
from .elastic import ElasticBatchNorm2d, ElasticDepthwiseConv, ElasticMBConvBlock, ElasticPointwiseConv
from .ofa_checkpoint import import_ofa_supernet
from .ops import get_act
from .static_blocks import (
    Classifier,
    ConvBNAct,
    GlobalAvgPool,
    InvertedResidual,
    MBConvBlock,
    StaticSubnet,
    create_op,
)
from .supernet import OFAMobileNetV3

__all__ = [
    "Classifier", "ConvBNAct", "ElasticBatchNorm2d", "ElasticDepthwiseConv", "ElasticMBConvBlock",
    "ElasticPointwiseConv", "GlobalAvgPool", "InvertedResidual", "MBConvBlock", "OFAMobileNetV3",
    "StaticSubnet", "create_op", "get_act", "import_ofa_supernet", "load_supernet", "recalibrate_bn", "save_supernet", "supernet_extra",
]
