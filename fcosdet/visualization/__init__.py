from .local_visualizer import DetLocalVisualizer
from .palette import generate_palette, get_palette

__all__ = ['DetLocalVisualizer', 'generate_palette', 'get_palette']
