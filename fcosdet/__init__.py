"""fcosdet: an MMDetection-style toolbox for FCOS, the anchor-free one-stage detector."""
__version__ = '0.1.0'
