"""Log analysis, training curves, TensorBoard, confusion matrix, best/worst images, benchmark,
print_config and browse_dataset, on one tiny training run."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from mmengine.config import Config
from tool_helpers import load_tool

CLASSES = ('ellipse', 'rectangle', 'triangle', 'ring')


def png_shape(path: Path) -> tuple[int, ...]:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, f'{path} does not decode'
    return image.shape


def test_analyze_logs_plots_one_800x300_panel_per_key(trained, tmp_path: Path) -> None:
    tool = load_tool('analysis_tools/analyze_logs.py')
    out = tmp_path / 'curve.png'
    log = str(trained['log'])
    tool.main(['plot_curve', log, '--keys', 'loss', 'coco/segm_mAP', '--out', str(out)])
    assert png_shape(out)[:2] == (600, 800)
    # a key's suffix is enough, and two logs share a panel
    tool.main(['plot_curve', str(trained['log']), str(trained['log']), '--keys', 'bbox_mAP',
               '--legend', 'a', 'b', '--out', str(out)])  # fmt: skip
    assert png_shape(out)[:2] == (300, 800)


def test_analyze_logs_errors_name_the_file_and_the_keys(trained, tmp_path: Path) -> None:
    tool = load_tool('analysis_tools/analyze_logs.py')
    with pytest.raises(KeyError, match=r"no key 'nope'.*loss_mask"):
        tool.main(['plot_curve', str(trained['log']), '--keys', 'nope', '--out', 'x.png'])
    with pytest.raises(FileNotFoundError, match='missing.json'):
        tool.main(['cal_train_time', str(tmp_path / 'missing.json')])
    bad = tmp_path / 'bad.json'
    bad.write_text('not json\n')
    with pytest.raises(ValueError, match='bad.json:1'):
        tool.main(['cal_train_time', str(bad)])


def test_cal_train_time_averages_logged_iteration_times(trained) -> None:
    rows = [json.loads(line) for line in trained['log'].read_text().splitlines()]
    times = [r['time'] for r in rows if 'iter' in r]
    tool = load_tool('analysis_tools/analyze_logs.py')
    with contextlib.redirect_stdout(io.StringIO()) as out:
        (summary,) = tool.main(['cal_train_time', str(trained['log']), '--include-outliers'])
    assert summary['mean_iter_time'] == pytest.approx(np.mean(times))
    assert summary['slowest_epoch'] in (1, 2) and 'average iter time' in out.getvalue()


def test_training_writes_loss_and_metric_curves(trained) -> None:
    # loss panel + loss-terms panel; one validation panel
    assert png_shape(trained['work_dir'] / 'loss_curve.png')[:2] == (600, 800)
    assert png_shape(trained['work_dir'] / 'metric_curve.png')[:2] == (300, 800)


def test_tensorboard_gets_scalars_and_sample_predictions(trained) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    vis_dir = trained['log'].parent
    assert list(vis_dir.glob('events.out.tfevents.*'))
    events = EventAccumulator(str(vis_dir), size_guidance={'images': 0, 'scalars': 0})
    events.Reload()
    assert len(events.Scalars('loss')) == 4  # 2 iterations x 2 epochs
    assert [e.step for e in events.Scalars('coco/segm_mAP')] == [1, 2]
    images = events.Images('val_img')
    assert len(images) == 2
    drawn = cv2.imdecode(np.frombuffer(images[0].encoded_image_string, np.uint8), 1)
    assert drawn.shape[:2] == (96, 96)


def test_confusion_matrix_counts_every_ground_truth_once(trained, tested, tmp_path) -> None:
    tool = load_tool('analysis_tools/confusion_matrix.py')
    with contextlib.redirect_stdout(io.StringIO()):
        matrix = tool.main(
            [str(trained['cfg']), str(tested['pkl']), str(tmp_path), '--score-thr', '0.05']
        )
    gt = json.loads((trained['data'] / 'annotations' / 'instances_val.json').read_text())
    num_gt = sum(not a.get('iscrowd', 0) for a in gt['annotations'])
    assert matrix.shape == (5, 5) and matrix[:4].sum() == num_gt
    saved = json.loads((tmp_path / 'confusion_matrix.json').read_text())
    assert saved['matrix'] == matrix.tolist() and saved['labels'] == [*CLASSES, 'background']
    width, height = tool.figure_inches(len(CLASSES))
    assert png_shape(tmp_path / 'confusion_matrix.png')[:2] == (
        round(height * 100),
        round(width * 100),
    )


def test_image_confusion_matches_one_to_one() -> None:
    tool = load_tool('analysis_tools/confusion_matrix.py')
    gt = dict(
        bboxes=np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32), labels=np.array([0, 1])
    )
    pred = dict(
        bboxes=np.array([[0, 0, 10, 10], [0, 0, 10, 9], [20, 20, 30, 30], [50, 50, 60, 60]]),
        scores=np.array([0.9, 0.8, 0.7, 0.1]),
        labels=np.array([0, 0, 0, 1]),
    )  # fmt: skip
    matrix = tool.image_confusion(pred, gt, 2, score_thr=0.3, iou_thr=0.5, iou_type='bbox')
    # TP for class 0, a duplicate (background FP), class 1 predicted as 0; the 0.1 is ignored
    assert matrix.tolist() == [[1, 0, 0], [1, 0, 0], [1, 0, 0]]


def test_analyze_results_writes_best_and_worst_side_by_side(trained, tested, tmp_path) -> None:
    tool = load_tool('analysis_tools/analyze_results.py')
    with contextlib.redirect_stdout(io.StringIO()):
        table = tool.main([str(trained['cfg']), str(tested['pkl']), str(tmp_path), '--topk', '1'])
    assert len(table) == 2 and all(0.0 <= row['mAP'] <= 1.0 for row in table)
    assert [r['mAP'] for r in table] == sorted((r['mAP'] for r in table), reverse=True)
    for folder in ('good', 'bad'):
        (png,) = (tmp_path / folder).glob('*.png')
        assert png_shape(png) == (96, 192, 3)  # ground truth | predictions
    saved = json.loads((tmp_path / 'per_image_map.json').read_text())
    assert saved['iou_type'] == 'segm' and len(saved['images']) == 2


def test_per_image_map_is_one_for_perfect_and_zero_for_missed() -> None:
    tool = load_tool('analysis_tools/analyze_results.py')
    gt = dict(
        bboxes=np.array([[0, 0, 10, 10], [20, 20, 40, 40]], np.float32), labels=np.array([0, 1])
    )
    perfect = dict(bboxes=gt['bboxes'], scores=np.array([0.9, 0.8]), labels=np.array([0, 1]))
    assert tool.image_map(perfect, gt, 'bbox') == pytest.approx(1.0)
    wrong = dict(bboxes=gt['bboxes'], scores=np.array([0.9, 0.8]), labels=np.array([1, 0]))
    assert tool.image_map(wrong, gt, 'bbox') == 0.0
    half = dict(bboxes=gt['bboxes'][:1], scores=np.array([0.9]), labels=np.array([0]))
    assert tool.image_map(half, gt, 'bbox') == pytest.approx(0.5)  # class 1 missed


def test_results_of_another_dataset_are_refused(trained, tmp_path: Path) -> None:
    import mmengine

    pkl = tmp_path / 'other.pkl'
    mmengine.dump([dict(img_id=999, pred_instances=dict(bboxes=np.zeros((0, 4)),
                                                        scores=np.zeros(0), labels=np.zeros(0)))],
                  pkl)  # fmt: skip
    tool = load_tool('analysis_tools/confusion_matrix.py')
    with pytest.raises(ValueError, match=r'image ids \[999\]'):
        tool.main([str(trained['cfg']), str(pkl), str(tmp_path)])
    pkl.write_text('{}')
    with pytest.raises(ValueError, match='other.pkl'):
        load_tool('analysis_tools/analyze_results.py').main([str(trained['cfg']), str(pkl), 'x'])


def test_benchmark_reports_speed_device_and_input_size(trained) -> None:
    tool = load_tool('analysis_tools/benchmark.py')
    with contextlib.redirect_stdout(io.StringIO()) as out:
        result = tool.main(['inference', str(trained['cfg']), str(trained['ckpt']),
                            '--num-images', '2', '--warmup', '1', '--device', 'cpu'])  # fmt: skip
    assert result['images_per_s'] > 0 and result['input_size'] == (96, 96)
    assert result['device'].startswith('cpu') and 'images/s' in out.getvalue()


def test_print_config_prints_and_saves_the_merged_config(trained, tmp_path: Path) -> None:
    tool = load_tool('misc/print_config.py')
    saved = tmp_path / 'merged.py'
    with contextlib.redirect_stdout(io.StringIO()) as out:
        tool.main([str(trained['cfg']), '--cfg-options', 'model.backbone.depth=34',
                   '--save-path', str(saved)])  # fmt: skip
    assert 'depth=34' in out.getvalue() and 'TensorboardVisBackend' in out.getvalue()
    merged = Config.fromfile(saved)
    assert merged.model.backbone.depth == 34 and merged.train_cfg.max_epochs == 2
    with pytest.raises(FileNotFoundError, match='nope.py'):
        tool.main([str(tmp_path / 'nope.py')])


def test_browse_dataset_draws_pipeline_outputs(trained, tmp_path: Path) -> None:
    tool = load_tool('analysis_tools/browse_dataset.py')
    with contextlib.redirect_stdout(io.StringIO()):
        written = tool.main([str(trained['cfg']), '--output-dir', str(tmp_path), '--not-show',
                             '--num-images', '2'])  # fmt: skip
    assert len(written) == 2
    for path in written:
        drawn = cv2.imread(path)
        assert drawn.shape == (96, 96, 3)
        source = cv2.imread(str(trained['data'] / 'train' / Path(path).name))
        flipped = source[:, ::-1]
        # masks and boxes were drawn: the output differs from the (possibly flipped) input
        assert not np.array_equal(drawn, source) and not np.array_equal(drawn, flipped)
    with pytest.raises(SystemExit), contextlib.redirect_stderr(io.StringIO()):
        tool.parse_args([str(trained['cfg']), '--not-show'])


@pytest.mark.parametrize(
    'tool',
    [
        'analysis_tools/analyze_logs.py',
        'analysis_tools/benchmark.py',
        'analysis_tools/confusion_matrix.py',
        'analysis_tools/analyze_results.py',
        'analysis_tools/browse_dataset.py',
        'misc/print_config.py',
        'image_demo.py',
    ],
)
def test_every_tool_help_has_an_example(tool: str) -> None:
    module = load_tool(tool)
    with pytest.raises(SystemExit), contextlib.redirect_stdout(io.StringIO()) as out:
        module.parse_args(['--help'])
    assert f'tools/{tool}' in out.getvalue()
