"""Backbones: ResNet and ResNeXt."""
from .res_blocks import BasicBlock, Bottleneck, make_res_layer
from .resnet import ResNet
from .resnext import ResNeXt

__all__ = ['BasicBlock', 'Bottleneck', 'ResNet', 'ResNeXt', 'make_res_layer']
