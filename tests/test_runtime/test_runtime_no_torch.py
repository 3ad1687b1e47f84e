"""The runtime runs where torch, mmengine and mmcv cannot be imported, and declares none."""
import ast
import subprocess
import sys
import textwrap
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    from pip._vendor import tomli as tomllib

RUNTIME = Path(__file__).resolve().parents[2] / 'runtime'
BLOCKED = ('torch', 'mmengine', 'mmcv', 'fcosdet')
ALLOWED_THIRD_PARTY = {'numpy', 'cv2', 'onnxruntime'}

# A fresh interpreter in which importing a blocked package raises ImportError, as in a venv
# without them: the runtime must import, detect and write JSON all the same.
_PROBE = textwrap.dedent('''
    import importlib.abc, sys
    BLOCKED = {blocked!r}

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split('.')[0] in BLOCKED:
                raise ImportError(f'{{name}} is blocked')
            return None

    sys.meta_path.insert(0, Block())
    sys.path.insert(0, {runtime!r})
    import numpy as np
    import fcosdet_runtime
    from fcosdet_runtime.cli import main
    result = fcosdet_runtime.Detector({onnx!r}, num_threads=1)(np.zeros((40, 60, 3), np.uint8))
    main([{onnx!r}, {image!r}, '--out-dir', {out!r}])
    loaded = sorted(m for m in sys.modules if m.split('.')[0] in BLOCKED)
    print('LOADED', loaded, 'BOXES', result['bboxes'].tolist())
''')


def test_runs_without_torch_mmengine_mmcv(tiny_onnx, tmp_path):
    import cv2
    import numpy as np
    image = tmp_path / 'img.png'
    cv2.imwrite(str(image), np.zeros((30, 40, 3), np.uint8))
    code = _PROBE.format(blocked=BLOCKED, runtime=str(RUNTIME), onnx=tiny_onnx,
                         image=str(image), out=str(tmp_path / 'out'))
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert 'LOADED [] BOXES [[0.0, 0.0, 60.0, 40.0]]' in proc.stdout
    assert (tmp_path / 'out' / 'preds' / 'img.json').is_file()


def test_sources_import_only_the_declared_dependencies():
    stdlib = set(sys.stdlib_module_names)
    for path in (RUNTIME / 'fcosdet_runtime').rglob('*.py'):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split('.')[0]
                assert top in stdlib or top in ALLOWED_THIRD_PARTY, f'{path.name} imports {name}'


def test_pyproject_declares_the_runtime_only():
    project = tomllib.loads((RUNTIME / 'pyproject.toml').read_text())['project']
    assert project['name'] == 'fcosdet-runtime'
    assert sorted(project['dependencies']) == ['numpy', 'onnxruntime', 'opencv-python-headless']
    module, func = project['scripts']['fcosdet-ort'].split(':')
    assert module == 'fcosdet_runtime.cli' and func == 'main'
    assert f'def {func}(' in (RUNTIME / 'fcosdet_runtime' / 'cli.py').read_text()
