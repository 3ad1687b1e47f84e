"""A config naming CocoDataset + the test pipeline + CocoMetric runs through mmengine's Runner."""
import pytest
import torch
from coco_fixture_data import coco_dict
from mmengine.model import BaseModel
from mmengine.runner import Runner
from mmengine.structures import InstanceData


class EchoGroundTruth(BaseModel):
    """Predicts each image's ground truth (in original pixels, as the test pipeline loads it)."""

    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Linear(1, 1)
        self.seen_shapes = []

    def forward(self, inputs, data_samples=None, mode='predict'):
        for img, sample in zip(inputs, data_samples):
            self.seen_shapes.append((tuple(img.shape), sample.img_shape, sample.scale_factor))
            gt = sample.gt_instances
            sample.pred_instances = InstanceData(bboxes=gt.bboxes, labels=gt.labels,
                                                 scores=torch.ones(len(gt.labels)))
        return data_samples


def test_runner_scores_a_coco_config(make_coco, tmp_path):
    content = coco_dict()
    # the file is the truth for COCOeval: keep only boxes the dataset keeps (ids 4, 5 are bad)
    content['annotations'] = [a for a in content['annotations'] if a['id'] not in (4, 5)]
    root = make_coco(content)
    ann_file = str(root / 'annotations/instances.json')
    test_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=(128, 96), keep_ratio=True),
        dict(type='LoadAnnotations', with_bbox=True),
        dict(type='PackDetInputs',
             meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
    ]
    model = EchoGroundTruth()
    runner = Runner(
        model=model, work_dir=str(tmp_path / 'work'), default_scope='fcosdet',
        test_dataloader=dict(
            batch_size=2, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
            dataset=dict(type='CocoDataset', data_root=str(root),
                         ann_file='annotations/instances.json', data_prefix=dict(img='images/'),
                         test_mode=True, pipeline=test_pipeline)),
        test_cfg=dict(type='TestLoop'),
        test_evaluator=dict(type='CocoMetric', ann_file=ann_file, metric='bbox'))
    metrics = runner.test()
    assert metrics['coco/bbox_mAP'] == pytest.approx(1.0)
    assert metrics['coco/bbox_mAP_50'] == pytest.approx(1.0)
    # image a.png is 64x48: resized by 2 to (96, 128)
    assert model.seen_shapes[0] == ((3, 96, 128), (96, 128), (2.0, 2.0))
    assert len(model.seen_shapes) == 5
