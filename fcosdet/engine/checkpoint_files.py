"""Durable files of a work dir: atomic writes, the ``last_checkpoint`` pointer, resume choice.

A file is durable once its bytes are written, fsynced, renamed over the final name and the
folder entry fsynced: a crash at any moment leaves either the old file or the new one, never a
half-written one under the final name. Half-written files keep the hidden name
``.<name>.<pid>.tmp`` and are removed by :func:`remove_stale_tmp_files` at the next start.

``last_checkpoint`` names the newest *confirmed* checkpoint (see
:class:`fcosdet.engine.hooks.CheckpointHook`), relative to the work dir so that a copied work
dir resumes from its own files. ``unconfirmed_checkpoints.json`` lists the checkpoints saved
just before a non-finite loss stopped training (never confirmed; their weights or optimizer
state may carry the explosion): ``--resume`` skips them as long as the file is unchanged.
``nonfinite_stop.json`` names the checkpoint ``--resume`` picked after such a stop and where the
stop was, so that resuming it with the same optimizer settings can say it will stop there again.
"""
import json
import os
import os.path as osp
import re

from fcosdet.utils.durable_files import write_text_durably

from .checkpoint_loading import CheckpointError, read_checkpoint

LAST_CHECKPOINT = 'last_checkpoint'
UNCONFIRMED = 'unconfirmed_checkpoints.json'
NONFINITE_STOP = 'nonfinite_stop.json'
_TMP_RE = re.compile(r'^\..+\.\d+\.tmp$')
_STEP_RE = re.compile(r'^(?:epoch|iter)_(\d+)\.pth$')


def remove_stale_tmp_files(folder: str) -> list[str]:
    """Remove the ``.<name>.<pid>.tmp`` files that killed writes left in ``folder``.

    Returns:
        The removed file names.
    """
    if not osp.isdir(folder):
        return []
    stale = sorted(n for n in os.listdir(folder) if _TMP_RE.match(n))
    for name in stale:
        os.remove(osp.join(folder, name))
    return stale


def write_last_checkpoint(work_dir: str, checkpoint: str) -> None:
    """Point ``<work_dir>/last_checkpoint`` at ``checkpoint`` (relative when inside the dir)."""
    rel = osp.relpath(osp.abspath(checkpoint), osp.abspath(work_dir))
    text = checkpoint if rel.startswith('..') else rel
    write_text_durably(osp.join(work_dir, LAST_CHECKPOINT), text)


def read_last_checkpoint(work_dir: str) -> tuple[str | None, str]:
    """The checkpoint named by ``<work_dir>/last_checkpoint``.

    A relative name is taken relative to the work dir. For an absolute name (written by
    mmengine's hook) a file of the same name in this work dir wins, so that a copied work dir
    resumes from its own files even while the original ones still exist.

    Returns:
        ``(path, '')``, or ``(None, why)`` when there is no usable name.
    """
    pointer = osp.join(work_dir, LAST_CHECKPOINT)
    if not osp.isfile(pointer):
        return None, f'{pointer} does not exist'
    with open(pointer) as f:
        name = f.read().strip()
    if not name:
        return None, f'{pointer} is empty'
    if not osp.isabs(name) and '://' not in name:
        return osp.join(work_dir, name), ''
    local = osp.join(work_dir, osp.basename(name))
    return (local if osp.isfile(local) else name), ''


def _file_key(path: str) -> list[int]:
    """Size and modification time (ns) of a file: a re-saved checkpoint no longer matches."""
    stat = os.stat(path)
    return [stat.st_size, stat.st_mtime_ns]


def _unconfirmed_records(work_dir: str) -> dict[str, dict]:
    """``{name relative to the work dir: dict(key=..., why=...)}`` of the unconfirmed list."""
    path = osp.join(work_dir, UNCONFIRMED)
    try:
        with open(path) as f:
            records = json.load(f)
    except (OSError, ValueError):  # none yet, or damaged: nothing is skipped
        return {}
    return records if isinstance(records, dict) else {}


def mark_unconfirmed(work_dir: str, checkpoint: str, why: str) -> None:
    """Record that ``--resume`` must skip ``checkpoint`` (until it is saved again).

    Args:
        work_dir: The run's work dir (holds ``unconfirmed_checkpoints.json``).
        checkpoint: The checkpoint file.
        why: Why it is not trusted, for the warning ``--resume`` prints.
    """
    records = _unconfirmed_records(work_dir)
    name = osp.relpath(osp.abspath(checkpoint), osp.abspath(work_dir))
    records[name] = dict(key=_file_key(checkpoint), why=why)
    write_text_durably(osp.join(work_dir, UNCONFIRMED), json.dumps(records, indent=1))


def unconfirmed_reason(work_dir: str, checkpoint: str) -> str:
    """Why ``checkpoint`` is on the unconfirmed list, or ``''`` (not listed, or saved since)."""
    name = osp.relpath(osp.abspath(checkpoint), osp.abspath(work_dir))
    record = _unconfirmed_records(work_dir).get(name)
    if not isinstance(record, dict) or not osp.isfile(checkpoint):
        return ''
    if record.get('key') != _file_key(checkpoint):
        return ''
    return f'{checkpoint}: {record.get("why", "not confirmed")}'


def record_nonfinite_stop(work_dir: str, checkpoint: str, where: str) -> None:
    """Note that training from ``checkpoint`` stopped with a non-finite loss at ``where``."""
    name = osp.relpath(osp.abspath(checkpoint), osp.abspath(work_dir))
    write_text_durably(osp.join(work_dir, NONFINITE_STOP),
                       json.dumps(dict(name=name, key=_file_key(checkpoint), where=where)))


def nonfinite_stop_after(work_dir: str, checkpoint: str) -> str:
    """Where training from ``checkpoint`` (unchanged since) last stopped non-finite, or ``''``."""
    try:
        with open(osp.join(work_dir, NONFINITE_STOP)) as f:
            record = json.load(f)
        name = osp.relpath(osp.abspath(checkpoint), osp.abspath(work_dir))
        if record['name'] == name and record['key'] == _file_key(checkpoint):
            return str(record['where'])
    except (OSError, ValueError, KeyError, TypeError):  # no stop recorded, or damaged
        pass
    return ''


def _candidates(work_dir: str) -> list[str]:
    """``epoch_N.pth``/``iter_N.pth`` files of the work dir, newest (largest N) first."""
    found = [(int(m.group(1)), osp.getmtime(osp.join(work_dir, n)), n)
             for n in os.listdir(work_dir) if (m := _STEP_RE.match(n))]
    return [osp.join(work_dir, n) for _, _, n in sorted(found, reverse=True)]


def _usable(work_dir: str, path: str) -> str:
    """``''`` if ``--resume`` may use the checkpoint at ``path``, else why not."""
    why = unconfirmed_reason(work_dir, path)
    if why:
        return why
    try:
        read_checkpoint(path)
    except CheckpointError as err:
        return str(err)
    return ''


def find_resume_checkpoint(work_dir: str) -> tuple[str | None, list[str]]:
    """The checkpoint ``--resume`` (without a file) continues from.

    The one named by ``last_checkpoint`` if it loads; else the newest ``epoch_N.pth`` /
    ``iter_N.pth`` of the work dir that loads. A checkpoint of the unconfirmed list
    (:func:`mark_unconfirmed`: saved just before a non-finite loss) is never picked.

    Args:
        work_dir: The run's work dir.

    Returns:
        The checkpoint path (None when the work dir holds no loadable checkpoint), and why each
        skipped candidate was skipped (empty when ``last_checkpoint`` was used).
    """
    named, why = read_last_checkpoint(work_dir)
    if named is not None:
        why = _usable(work_dir, named)
        if not why:
            return named, []
    tried = {osp.abspath(named)} if named else set()
    skipped = [why] if osp.isfile(osp.join(work_dir, LAST_CHECKPOINT)) else []
    for path in _candidates(work_dir) if osp.isdir(work_dir) else []:
        if osp.abspath(path) in tried:
            continue
        why = _usable(work_dir, path)
        if not why:
            return path, skipped
        skipped.append(why)
    return None, skipped
