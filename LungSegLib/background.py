"""Run a segmentation in a child process so the Slicer panel stays responsive and Cancel is immediate.

The panel (as SlicerTotalSegmentator and SlicerMONAIAuto3DSeg do) starts the work in a separate Python
(``PythonSlicer``) and polls it from a ``QTimer``; this module is the Qt-free part, so it is tested
without Slicer::

    run = BackgroundRun(image, params, python="PythonSlicer").start()
    while run.poll() == RUNNING:        # the panel calls poll() from its timer instead
        for fraction, message in run.take_progress(): ...
    result = run.result()               # a pipeline.Result; the temporary folder is gone afterwards

The child gets a temporary copy of the input (``input.npz``) and writes its result beside it
(:mod:`LungSegLib.worker`); ``cancel()`` kills the child's whole process group and removes the folder, so
nothing partial is left on disk or in the scene.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import asdict
from pathlib import Path

from .errors import CancelledError, LungSegError
from .worker import ERROR, PROGRESS, load_image, save_image

RUNNING, DONE, FAILED, CANCELLED = "running", "done", "failed", "cancelled"
WORKER = Path(__file__).with_name("worker.py")
PREFIX, OWNER = "lungseg-run-", "owner.pid"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def remove_orphaned_rundirs(root: Path | None = None) -> int:
    """Remove temporary run folders whose Slicer is gone (it crashed or was killed mid-run)."""
    removed = 0
    for folder in Path(root or tempfile.gettempdir()).glob(PREFIX + "*"):
        try:
            owner = int((folder / OWNER).read_text())
        except (OSError, ValueError):
            continue  # not ours, or still being created
        if owner != os.getpid() and not _alive(owner):
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed


class BackgroundRun:
    def __init__(self, image, params, python: str | None = None, options=None):
        from .options import CaseOptions

        self.image, self.params = image, params.validate()
        self.options = (options or CaseOptions()).validate()  # regional levels, patient position
        self.python = python or sys.executable
        self.rundir: Path | None = None
        self.process: subprocess.Popen | None = None
        self.state = RUNNING
        self.error = ""
        self._lines: queue.Queue = queue.Queue()
        self._progress: list = []
        self._reader: threading.Thread | None = None

    # ---------------------------------------------------------------------------------------- process
    def start(self) -> "BackgroundRun":
        remove_orphaned_rundirs()
        self.rundir = Path(tempfile.mkdtemp(prefix=PREFIX))
        try:
            (self.rundir / OWNER).write_text(str(os.getpid()))
            save_image(self.image, self.rundir / "input.npz")
            (self.rundir / "params.json").write_text(json.dumps(asdict(self.params)))
            (self.rundir / "options.json").write_text(json.dumps(asdict(self.options)))
            env = dict(os.environ, PYTHONUNBUFFERED="1")
            new_group = {"start_new_session": True} if os.name == "posix" else \
                {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.CREATE_NO_WINDOW}
            self.process = subprocess.Popen([self.python, str(WORKER), str(self.rundir)], stdout=subprocess.PIPE,
                                            stderr=open(self.rundir / "stderr.txt", "w"), stdin=subprocess.DEVNULL,
                                            text=True, env=env, **new_group)
        except Exception:
            self.cleanup()
            raise
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self):
        for line in self.process.stdout:
            self._lines.put(line.rstrip("\n"))
        self.process.stdout.close()

    def poll(self) -> str:
        """Collect progress lines; when the child has ended, settle the state (done or failed)."""
        while True:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                break
            if line.startswith(PROGRESS + " "):
                fraction, _, message = line[len(PROGRESS) + 1:].partition(" ")
                self._progress.append((float(fraction), message))
            elif line.startswith(ERROR + " "):
                self.error = line[len(ERROR) + 1:]
        if self.state == RUNNING and self.process is not None and self.process.poll() is not None:
            self._reader.join(timeout=5)
            if self._lines.qsize():
                return self.poll()
            self.state = DONE if self.process.returncode == 0 and (self.rundir / "result.json").exists() else FAILED
            if self.state == FAILED and not self.error:
                self.error = self._last_stderr_line() or f"the worker ended with status {self.process.returncode}"
        return self.state

    def take_progress(self) -> list:
        """(fraction, message) pairs reported since the last call."""
        out, self._progress = self._progress, []
        return out

    def wait(self, timeout: float | None = None) -> str:
        """Block until the child ends (console and tests; the panel polls instead)."""
        self.process.wait(timeout)
        return self.poll()

    def cancel(self) -> None:
        """Kill the child and everything it started, then remove the temporary folder."""
        if self.process is not None and self.process.poll() is None:
            try:
                if os.name == "posix":
                    os.killpg(self.process.pid, signal.SIGKILL)
                else:
                    subprocess.run(["taskkill", "/F", "/T", "/PID", str(self.process.pid)], capture_output=True)
            except ProcessLookupError:
                pass
            self.process.wait(timeout=30)
        self.state = CANCELLED
        self.cleanup()

    def cleanup(self) -> None:
        if self._reader is not None and self.process is not None and self.process.poll() is not None:
            self._reader.join(timeout=5)
        if self.rundir is not None:
            shutil.rmtree(self.rundir, ignore_errors=True)

    def _last_stderr_line(self) -> str:
        try:
            lines = (self.rundir / "stderr.txt").read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1][:500] if lines else ""

    # ----------------------------------------------------------------------------------------- result
    def result(self):
        """The finished run as a :class:`pipeline.Result` (labels on the input grid); raises LungSegError with
        the child's one-line message when it failed, CancelledError when cancelled. Removes the folder."""
        from .pipeline import Result

        state = self.poll()
        try:
            if state == CANCELLED:
                raise CancelledError("cancelled by the user")
            if state == RUNNING:
                raise LungSegError("the background run has not finished yet")
            if state == FAILED:
                raise LungSegError(self.error)
            report = json.loads((self.rundir / "result.json").read_text())
            labels = load_image(self.rundir / "result.npz")
        finally:
            if state != RUNNING:
                self.cleanup()
        labels.meta = dict(self.image.meta)
        self.image.modality = labels.modality  # as the worker decided it (a forced modality included)
        return Result(self.image, labels, report["engine"], report["model"], report["measurements"], report["qc"],
                      report["warnings"], report["timings"], self.options)
