"""The figures stage: the parameterised notebooks of ``notebooks/`` (papermill), which draw the figures
(:mod:`densim.plots`) and write the tables (:mod:`densim.tables`) from the evaluation files, each executed copy kept.
"""

from __future__ import annotations

import sys
from pathlib import Path

from densim.io import atomic_path


def render_notebook(notebook: str | Path, executed: str | Path, parameters: dict) -> Path:
    """Execute a parameterised notebook with papermill and keep the executed copy.

    The copy is written to a temporary file beside ``executed`` and renamed when the run succeeds, so a failed
    or killed run leaves no executed notebook. Cell output goes to this process's stderr.

    Parameters
    ----------
    notebook : path
        A notebook with a cell tagged ``parameters``.
    executed : path
        Where the executed copy goes.
    parameters : dict
        Values injected after the ``parameters`` cell.

    Returns
    -------
    Path
        ``executed``.

    Raises
    ------
    papermill.PapermillExecutionError
        If a cell fails (the message holds the cell's traceback).
    """
    import papermill

    with atomic_path(executed, suffix=".tmp.ipynb") as tmp:
        papermill.execute_notebook(str(notebook), str(tmp), parameters=parameters, kernel_name="python3", progress_bar=False,
                                   stdout_file=sys.stderr, stderr_file=sys.stderr)
    return Path(executed)
