"""benchmark.py --dcn-layer: the three timings, their ratios, and the errors of the option."""
import importlib.util
import json
from pathlib import Path

import pytest

from fcosdet.utils.cli import CLIError

TOOL = Path(__file__).resolve().parents[2] / 'tools' / 'analysis_tools' / 'benchmark.py'
spec = importlib.util.spec_from_file_location('benchmark_dcn', TOOL)
benchmark = importlib.util.module_from_spec(spec)
spec.loader.exec_module(benchmark)


@pytest.mark.parametrize('task', ['inference', 'train'])
def test_dcn_layer_reports_conv_op_layer_and_ratios(tmp_path: Path, task: str) -> None:
    out = tmp_path / 'dcn.json'
    benchmark.main(['--dcn-layer', '4', '6', '5', '--task', task, '--repeat', '2',
                    '--warmup', '0', '--threads', '1', '--json', str(out)])
    result = json.loads(out.read_text())
    figures = result['figures']
    assert result['settings']['dcn_layer'] == [4, 6, 5]
    assert set(figures) == {'conv', 'dcn_op', 'dcn_layer', 'ratio'}
    for name in ('dcn_op', 'dcn_layer'):
        assert figures['ratio'][name] == pytest.approx(
            figures[name]['median_s'] / figures['conv']['median_s'])


def test_dcn_layer_errors() -> None:
    with pytest.raises(CLIError, match='--dcn-layer needs'):
        benchmark.main(['--dcn-layer', '4', '6', '5', '--task', 'dataloader'])
    with pytest.raises(CLIError, match='a config file is needed'):
        benchmark.main(['--task', 'inference'])
