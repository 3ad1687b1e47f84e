"""The docs say what the code does: one lint command, existing config paths, every package in
CONTRIBUTING.md's layout table, and CI running the README's test command."""
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / 'README.md', REPO / 'CONTRIBUTING.md', *sorted((REPO / 'docs').glob('*.md')),
        *sorted((REPO / 'configs').rglob('README.md'))]
TOOLS = sorted((REPO / 'tools').rglob('*.py'))
# a config path from the repository root (not the tail of projects/.../configs/..., nor an
# entry of a folder tree drawn with '── ')
CONFIG_PATH = re.compile(r'(?<![\w/.-])(?<!── )configs/[\w/.-]+\.py')
# the user's own config in the custom-dataset walk-through
USER_CONFIGS = ('configs/my_data/',)


def test_config_paths_in_docs_and_tool_docstrings_exist():
    missing = [f'{path.relative_to(REPO)}: {name}'
               for path in [*DOCS, *TOOLS]
               for name in CONFIG_PATH.findall(path.read_text())
               if not (REPO / name).is_file() and not name.startswith(USER_CONFIGS)]
    assert not missing, '\n'.join(missing)


def test_one_lint_command_everywhere():
    found = {f'{path.relative_to(REPO)}: {command}'
             for path in [*DOCS, REPO / '.ci' / 'run']
             for command in re.findall(r'ruff check[^`\n]*', path.read_text())}
    assert found and all(line.endswith(': ruff check .') for line in found), sorted(found)


def test_ci_runs_the_readme_test_command():
    readme = (REPO / 'README.md').read_text()
    command = re.search(r'\*\*\(2\).*?```bash\n(.*?)\n```', readme, re.S).group(1)
    assert 'pytest tests' in command
    assert command in (REPO / '.ci' / 'run').read_text().splitlines()


def test_contributing_lists_every_package_and_the_layering():
    text = (REPO / 'CONTRIBUTING.md').read_text()
    table = text[text.index('## Layout'):text.index('### Layering')]
    packages = sorted(str(init.parent.relative_to(REPO))
                      for init in (REPO / 'fcosdet').rglob('__init__.py'))
    missing = [name for name in packages if name != 'fcosdet' and f'`{name}`' not in table]
    assert not missing, missing
    layering = text[text.index('### Layering'):text.index('## Conventions')]
    for name in ('registry.py', 'structures', 'utils', 'models', 'datasets', 'evaluation',
                 'visualization', 'engine', 'deployment', 'apis'):
        assert f'`fcosdet/{name}`' in layering, name
    assert 'tests/test_import_graph.py' in layering
