"""Every ``torch.load`` in the tree passes ``weights_only=True`` explicitly.

torch < 2.6 (the project allows >= 2.1) defaults to full unpickling, which runs whatever code a
crafted checkpoint holds; an explicit ``weights_only=True`` is safe on every version.
"""
import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FOLDERS = ('fcosdet', 'tools', 'tests', 'configs', 'projects', 'docs')


def _python_files() -> list[Path]:
    return [p for folder in FOLDERS if (REPO / folder).is_dir()
            for p in sorted((REPO / folder).rglob('*.py'))]


def _is_torch_load(call: ast.Call) -> bool:
    func = call.func
    return (isinstance(func, ast.Attribute) and func.attr == 'load'
            and isinstance(func.value, ast.Name) and func.value.id == 'torch')


def test_every_torch_load_is_weights_only():
    offenders, loads = [], 0
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            flag = next((k.value for k in node.keywords if k.arg == 'weights_only'), None)
            explicit_true = isinstance(flag, ast.Constant) and flag.value is True
            if _is_torch_load(node):
                loads += 1
                if not explicit_true:
                    offenders.append(f'{path.relative_to(REPO)}:{node.lineno}')
            elif flag is not None and not explicit_true:  # e.g. a wrapper passing False
                offenders.append(f'{path.relative_to(REPO)}:{node.lineno}')
    assert offenders == []
    assert loads >= 2  # the check found the loader of fcosdet and this suite's own loads


def test_markdown_never_suggests_unsafe_loading():
    docs = [REPO / 'README.md', *sorted((REPO / 'docs').rglob('*.md'))]
    unsafe = 'weights_only=' + 'False'
    assert [str(p.relative_to(REPO)) for p in docs if unsafe in p.read_text()] == []
