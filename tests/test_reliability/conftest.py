"""Fault tests: the ``faults`` marker selects the long kill/resume loops (deselected by default).

Run them with ``python -m pytest tests/test_reliability -m faults`` (see CONTRIBUTING.md).
"""
import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line('markers', 'faults: long kill -9 / resume loops (run with -m faults)')


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the ``faults`` tests unless ``-m`` names the marker."""
    if 'faults' in (config.getoption('markexpr') or ''):
        return
    heavy = [item for item in items if 'faults' in item.keywords]
    if heavy:
        config.hook.pytest_deselected(items=heavy)
        items[:] = [item for item in items if 'faults' not in item.keywords]
