"""Checkpoint downloads for the app: the bytes come down in the server, the check runs in a worker.

Why: verifying a checkpoint means loading it as the model's state dict, which needs torch, and
the web server never imports torch. The download itself is plain HTTP (no torch), so the server
streams it with a progress bar and hands the finished temporary file to a short-lived spawned
process that loads it (``model.verify_checkpoint``); only a file that passes is given its name.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable
from pathlib import Path

from sam2web.errors import UserError

VERIFY_TIMEOUT_S = 600.0  # loading a large checkpoint on a slow disk


def _verify_child(path: str, size: str, conn) -> None:
    from sam2web.tracking import model

    try:
        model.verify_checkpoint(path, size)
        conn.send(("ok", ""))
    except UserError as err:
        conn.send(("error", str(err)))
    except Exception as err:  # noqa: BLE001 - reported as a sentence, the file is not kept
        conn.send(("error", f"The downloaded checkpoint could not be checked ({type(err).__name__}: {err})."[:300]))
    finally:
        conn.close()


def verify_in_worker(path: Path, size: str) -> None:
    """``model.verify_checkpoint`` in a spawned process; a UserError here when the file is refused."""
    ctx = mp.get_context("spawn")
    reader, writer = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_verify_child, args=(str(path), size, writer), daemon=True, name="sam2web-verify")
    proc.start()
    writer.close()
    try:
        if not reader.poll(VERIFY_TIMEOUT_S):
            raise UserError("Checking the downloaded checkpoint took too long; try the download again.")
        kind, sentence = reader.recv()
    except EOFError:
        raise UserError("The process checking the downloaded checkpoint stopped; try the download again.") from None
    finally:
        reader.close()
        proc.join(5)
        if proc.is_alive():
            proc.kill()
            proc.join()
    if kind != "ok":
        raise UserError(sentence)


def download(size: str, progress: Callable[[int, int], None] | None = None) -> Path:
    """Download the ``size`` checkpoint into the checkpoint folder, verified without torch in this process."""
    from sam2web.tracking import model

    return model.download_checkpoint(size, progress=progress, verify=verify_in_worker)
