"""The ``--slice-*`` flags of the inference tools (``tools/test.py``, ``tools/infer.py``,
``tools/image_demo.py``): sliced inference on large images."""
import argparse

from fcosdet.structures.slicing import MERGE_MODES, check_slice_params

from .cli import CLIError


def add_slice_args(parser: argparse.ArgumentParser) -> None:
    """Add ``--slice-size H W``, ``--slice-overlap R``, ``--slice-merge`` and
    ``--slice-full-image`` to ``parser``."""
    group = parser.add_argument_group('sliced inference (large images, small objects)')
    group.add_argument('--slice-size', type=int, nargs=2, default=None, metavar=('H', 'W'),
                       help='predict overlapping tiles of H x W pixels (each through the test '
                            'pipeline) and merge them; images no larger are predicted once')
    group.add_argument('--slice-overlap', type=float, default=None, metavar='R',
                       help='overlap ratio of neighbouring tiles, in [0, 1) (default 0.2)')
    group.add_argument('--slice-merge', choices=MERGE_MODES, default=None,
                       help='nms (default): class-aware NMS (IoU > 0.5); nmm: greedy non-maximum '
                            'merging (intersection over the smaller box > 0.5, enclosing box)')
    group.add_argument('--slice-full-image', action='store_true',
                       help='add one pass over the whole image (large objects)')


def slice_kwargs(args: argparse.Namespace) -> dict:
    """The slicing keyword arguments of ``inference_detector`` / ``DetInferencer``.

    Returns:
        ``{}`` without ``--slice-size``; else ``slice_size``, ``slice_overlap``,
        ``slice_merge``, ``slice_full_image``.

    Raises:
        CLIError: A bad ``--slice-size`` or ``--slice-overlap``, or ``--slice-overlap``,
            ``--slice-merge`` or ``--slice-full-image`` without ``--slice-size``.
    """
    if args.slice_size is None:
        if args.slice_full_image or args.slice_merge is not None or args.slice_overlap is not None:
            raise CLIError('--slice-overlap/--slice-merge/--slice-full-image need --slice-size')
        return {}
    overlap = 0.2 if args.slice_overlap is None else args.slice_overlap
    try:
        size = check_slice_params(tuple(args.slice_size), overlap)
    except ValueError as err:
        raise CLIError(f'--slice-size/--slice-overlap: {err}') from err
    return dict(slice_size=size, slice_overlap=overlap, slice_merge=args.slice_merge or 'nms',
                slice_full_image=args.slice_full_image)
