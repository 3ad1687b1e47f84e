"""Helpers of the CLI tests: run the tools as subprocesses, read their outputs."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROBES_DIR = Path(__file__).resolve().parent


def run_tool(args: list[str], env: dict[str, str] | None = None,
             timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``args`` (a tools/ script and its arguments) from the repo root."""
    cmd = ['bash', *args] if args[0].endswith('.sh') else [sys.executable, *args]
    full_env = dict(os.environ, PYTHONPATH=f'{REPO}{os.pathsep}{PROBES_DIR}', **(env or {}))
    return subprocess.run(cmd, cwd=REPO, env=full_env, capture_output=True, text=True,
                          timeout=timeout)


def free_port() -> str:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return str(s.getsockname()[1])


def scalar_logs(work_dir: Path, pattern: str = '*/vis_data/scalars.json') -> list[dict]:
    """The json log lines of the (only) run in ``work_dir`` (test runs: ``'*/*.json'``)."""
    (log,) = work_dir.glob(pattern)
    return [json.loads(line) for line in log.read_text().splitlines()]


def assert_ok(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stderr[-3000:]
