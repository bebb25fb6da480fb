"""Commit and publish a run: what makes its files count, and what a reader may glob.

A run writes its part files under staging names (hidden, ending in ``.tmp``). It then:

1. **commits**: writes ``_state.json`` with the new cursors and a ``pending`` entry listing the renames to do;
2. **publishes**: renames each staged file to ``part-NNNNN.jsonl.gz``, writes ``run=.../_manifest.json`` (the
   run's summary: the proof that the run committed), and writes the state again without ``pending``.

Whoever loads the state next (a retry, a later run) finishes a publication left half done, so a task killed
between 1 and 2 loses nothing; renames already done are skipped. Before the commit nothing has a data file's
name; after it, nothing is ever removed or rewritten: a re-run of a committed run returns its manifest.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from airflow_provider_codat.extract.state import ExtractState, save_state
from airflow_provider_codat.landing.layout import STAGED_SUFFIX
from airflow_provider_codat.landing.manifest import write_manifest

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

log = logging.getLogger(__name__)


def publish(type_folder: ObjectStoragePath, state: ExtractState) -> ExtractState:
    """Finish the publication recorded in ``state.pending`` (idempotent) and return the state without it.

    :param type_folder: ``{destination}/{company_id}/{data_type}``.
    :param state: a state whose ``pending`` entry may be set.
    """
    pending = state.pending
    if pending is None:
        return state
    run_folder = type_folder / pending["run_folder"]
    for staged, final in pending.get("moves") or ():
        source = run_folder / staged
        if source.exists():
            source.fs.mv(source.path, (run_folder / final).path)
        elif not (run_folder / final).exists():
            raise FileNotFoundError(
                f"The committed run {pending.get('run_id')} lost its staged file {source} before it was "
                "published; restore it, or remove _state.json and run with full_refresh=True."
            )
    write_manifest(run_folder, pending.get("run_id"), pending.get("summary"))
    done = state.published()
    save_state(type_folder, done)
    log.info(
        "Published run %s: %d part files in %s",
        pending.get("run_id"),
        len(pending.get("moves") or ()),
        run_folder,
    )
    return done


def remove_staged(run_folder: ObjectStoragePath, token: str | None = None) -> None:
    """Remove staged files left in ``run_folder`` by earlier attempts (or only those of ``token``).

    Committed files are never touched: they carry final names.
    """
    if not run_folder.exists():
        return
    prefix = f".{token}." if token else "."
    for path in run_folder.iterdir():
        if path.name.startswith(prefix) and path.name.endswith(STAGED_SUFFIX):
            path.unlink()
