"""A test hook for convtrain processes started by the tests: stop at a known point, on request.

With CONVTRAIN_TEST_PAUSE=N:FOLDER in its environment (and this folder on PYTHONPATH), a
convtrain process stops right after committing its N-th epoch (state.json, checkpoints and
history.csv all written), writes FOLDER/paused, and waits until FOLDER/go exists. A test can
then signal or kill it at exactly that point instead of racing the clock (conftest.pausing).
"""

import os

_SPEC = os.environ.get("CONVTRAIN_TEST_PAUSE")

if _SPEC:
    import faulthandler
    import signal
    import time

    # A test that finds the process hung sends SIGUSR1: every thread's stack goes to stderr
    # (conftest.exit_code_or_stacks), so the failure says where it hung.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    from pathlib import Path

    import convtrain.io

    _epochs, _, _folder = _SPEC.partition(":")
    _real = convtrain.io.atomic_write_text
    _paused: list[bool] = []

    def _pausing_write(path, text):
        _real(path, text)
        committed = text.count("\n") - 1  # history.csv: a header, then one line per epoch
        if Path(path).name == "history.csv" and committed >= int(_epochs) and not _paused:
            _paused.append(True)
            folder = Path(_folder)
            _real(folder / "paused", f"{os.getpid()}\n")
            while not (folder / "go").exists():
                time.sleep(0.02)

    # Bound before convtrain's modules import it by name.
    convtrain.io.atomic_write_text = _pausing_write
