"""A detector from the resized image batch to padded final detections, in one module.

What the ONNX end-to-end file computes (see ``docs/deployment.md``): the data preprocessor's
channel flip and normalisation, the padded area set to its pad value, backbone, neck, head, the
head's own decoding (:func:`~fcosdet.models.dense_heads.dense_postprocess.dense_candidates`,
shared with ``predict``) and :func:`~fcosdet.deployment.onnx_nms.padded_detections`.

Shape letters: N images, H/W padded batch height/width, P = ``max_per_img`` rows per image.
"""
import torch
from torch import Tensor, nn

from fcosdet.models.dense_heads.dense_postprocess import dense_candidates

from .onnx_nms import padded_detections

INPUT_NAMES = ('images', 'img_shapes')
OUTPUT_NAMES = ('dets', 'scores', 'labels', 'num_dets')


def normalization(data_preprocessor: nn.Module) -> tuple[list[float], list[float]]:
    """The preprocessor's ``mean`` and ``std`` (1 or 3 values each); 0 and 1 when it does not
    normalise."""
    if not getattr(data_preprocessor, '_enable_normalize', False):
        return [0.0], [1.0]
    return (data_preprocessor.mean.reshape(-1).tolist(),
            data_preprocessor.std.reshape(-1).tolist())


def normalize_and_mask(images: Tensor, img_shapes: Tensor, mean: Tensor, std: Tensor,
                       flip_channels: bool, pad_value: float) -> Tensor:
    """What ``DetDataPreprocessor`` gives for images already padded to a common size.

    Args:
        images (Tensor): ``[N, 3, H, W]`` raw pixel values, each image at the top left.
        img_shapes (Tensor): ``[N, 2]`` (h, w) of each image before padding.
        mean (Tensor): ``[1, 3, 1, 1]`` subtracted after the channel flip.
        std (Tensor): ``[1, 3, 1, 1]`` divisor.
        flip_channels (bool): Reverse the channel order first (BGR <-> RGB).
        pad_value (float): Value of every pixel at rows >= h or columns >= w.

    Returns:
        Tensor: ``[N, 3, H, W]`` normalised batch.
    """
    if flip_channels:
        images = images.flip(1)
    images = (images - mean) / std
    # Row / column indices from the input's own size, so an exported graph follows it.
    rows = torch.ones_like(images[0, 0, :, 0]).cumsum(0) - 1  # [H]
    cols = torch.ones_like(images[0, 0, 0, :]).cumsum(0) - 1  # [W]
    shapes = img_shapes.to(images.dtype)
    inside = ((rows[None, :, None] < shapes[:, 0, None, None])
              & (cols[None, None, :] < shapes[:, 1, None, None]))  # [N, H, W]
    return torch.where(inside[:, None], images, torch.full_like(images, pad_value))


class End2EndDetector(nn.Module):
    """A dense detector with its preprocessing and post-processing as tensor operations.

    Args:
        detector (nn.Module): Eval-mode single-stage detector (``data_preprocessor``,
            ``extract_feat``, ``bbox_head`` with ``prediction_maps`` / ``decode_candidates``
            and a ``test_cfg`` whose ``max_per_img`` >= 1).
    """

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        head = detector.bbox_head
        for method in ('prediction_maps', 'decode_candidates'):
            if not hasattr(head, method):
                raise ValueError(f'End2EndDetector: {type(head).__name__} has no {method}; '
                                 'only the dense heads of fcosdet export end to end')
        if head.test_cfg['max_per_img'] < 1:
            raise ValueError('End2EndDetector: test_cfg max_per_img must be >= 1 for a '
                             f"fixed-size output, got {head.test_cfg['max_per_img']}")
        self.detector = detector
        pre = detector.data_preprocessor
        mean, std = normalization(pre)
        device = next(detector.parameters()).device
        self.register_buffer('mean', torch.tensor(mean, device=device).reshape(1, -1, 1, 1),
                             persistent=False)
        self.register_buffer('std', torch.tensor(std, device=device).reshape(1, -1, 1, 1),
                             persistent=False)
        self.flip_channels = bool(pre._channel_conversion)
        self.pad_value = float(pre.pad_value)

    def forward(self, images: Tensor, img_shapes: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Detections of a resized, padded batch.

        Args:
            images (Tensor): ``[N, 3, H, W]`` float raw pixels (BGR as read by cv2).
            img_shapes (Tensor): ``[N, 2]`` float (h, w) before padding.

        Returns:
            tuple[Tensor, Tensor, Tensor, Tensor]: ``dets [N, P, 4]`` x1y1x2y2 in the resized
            image's pixels, ``scores [N, P]`` (decreasing, 0 in padding rows), long
            ``labels [N, P]`` (-1 in padding rows), long ``num_dets [N]``.
        """
        inputs = normalize_and_mask(images, img_shapes, self.mean, self.std,
                                    self.flip_channels, self.pad_value)
        head = self.detector.bbox_head
        cfg = head.test_cfg
        outs = head(self.detector.extract_feat(inputs))
        boxes, scores, labels, valid = dense_candidates(head, head.prediction_maps(*outs),
                                                        img_shapes, cfg)
        return padded_detections(boxes, scores, labels, valid, head.num_classes,
                                 cfg['nms']['iou_threshold'], cfg['max_per_img'],
                                 cfg['min_bbox_size'])
