"""``python -m fcosdet_runtime MODEL.onnx INPUTS... --out-dir DIR`` (as ``fcosdet-ort``)."""
from .cli import main

main()
