"""The OUTDIR contract, shared by ``lungseg segment`` and the Slicer batch script (LungSeg/Scripts/lungseg_batch.py).

* One writer at a time: an advisory ``flock`` on ``OUTDIR/.lungseg.lock`` (released by the kernel even on
  kill -9). The lock is opened without following symbolic links and must be a plain file with one link,
  so a planted link cannot make LungSeg write outside OUTDIR.
* Owned temporary names: every run draws a token, records it in the lock file and names its temporaries
  ``.lungseg-<token>.*`` (case folders being written, files being replaced). The next run removes only
  the temporaries of the run recorded in the lock (one that died); no other file in OUTDIR is ever
  deleted or changed, whatever its name.
* A case folder is written under a temporary name and renamed into place: absent or complete. It holds
  ``measurements.json`` (written last) that records its input; a case keeps its folder across runs (a new
  input whose name is taken by another input's folder gets ``name_2``), so ``--resume`` never takes
  one input's results for another's.
* ``OUTDIR/measurements.csv`` lists every finished case folder in OUTDIR, whichever run wrote it;
  ``errors.csv`` keeps the failures of earlier runs for cases this run did not try again.
"""

from __future__ import annotations

import csv
import errno
import json
import os
import shutil
import stat
import tempfile
from pathlib import Path

from .errors import LungSegError, os_error_message
from .io import RUN_TOKEN, TEMP_PREFIX, current_umask, write_text
from .limits import utf8_name
from .report import csv_rows, rows_to_csv

LOCK_NAME = ".lungseg.lock"
ERROR_COLUMNS = ["case", "input", "error"]


def _input_key(path) -> str:
    """An input as an absolute real path (plus ``::UID``), to compare inputs across runs and arguments."""
    text = str(path)
    folder, sep, uid = text.rpartition("::") if "::" in text and not os.path.exists(text) else (text, "", "")
    return os.path.realpath(os.path.abspath(folder)) + (f"::{uid}" if sep else "")


def _same_input(recorded: str, path) -> bool:
    return _input_key(recorded) == _input_key(path)


class OutputFolder:
    """``with OutputFolder(path) as out:`` holds the lock for one run (see the module docstring)."""

    def __init__(self, path):
        self.path = Path(path)
        self.token = RUN_TOKEN
        self.rows: dict = {}
        self._lock = None

    # ---------------------------------------------------------------------------------------- lock
    def __enter__(self):
        self._make_folder()
        try:
            import fcntl
        except ImportError:  # Windows: no flock; one batch per OUTDIR
            fcntl = None
        lock = self.path / LOCK_NAME
        for _ in range(3):  # another run may unlink the lock between our open and our flock: retry
            fd = self._open_lock(lock)
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    os.close(fd)
                    raise LungSegError(f"{self.path}: another lungseg batch is writing to this folder; wait for it "
                                       "to end or choose another output folder") from None
            try:
                same = os.stat(lock, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        else:
            raise LungSegError(f"{self.path}: cannot take the lock {LOCK_NAME}; try again")
        self._lock = fd
        try:
            os.lseek(fd, 0, os.SEEK_SET)  # (no pread/pwrite: they do not exist on Windows)
            previous = os.read(fd, 200).decode("ascii", "replace").strip()
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, self.token.encode())
            os.fsync(fd)
            if previous and previous != self.token:
                self._remove_temporaries(previous)
            self.rows = self._finished_rows()
        except BaseException:  # e.g. a full disk: release the lock, then report
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        if self._lock is not None:
            for entry in self._entries(self.token):  # ours, left by an error: remove
                _remove(entry)
            try:
                os.unlink(self.path / LOCK_NAME)  # while still locked: no other run holds this inode
            except OSError:
                os.ftruncate(self._lock, 0)
            os.close(self._lock)  # releases the flock
            self._lock = None
        return False

    def _make_folder(self) -> None:
        if not utf8_name(self.path):
            raise LungSegError(f"{ascii(str(self.path))[1:-1]}: output folder name is not valid UTF-8; the image "
                               "libraries cannot write there; choose another name")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise LungSegError(f"{self.path}: output folder is an existing file; expected a folder (or a new "
                               "name)") from None
        except OSError as e:
            raise LungSegError(f"{self.path}: cannot create the output folder ({os_error_message(e)})") from None
        if not os.access(self.path, os.W_OK | os.X_OK):
            raise LungSegError(f"{self.path}: output folder is not writable; choose a folder you can write to")

    def _open_lock(self, lock: Path) -> int:
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0) \
            | getattr(os, "O_NONBLOCK", 0)
        try:
            fd = os.open(lock, flags, 0o666)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise LungSegError(f"{lock}: is a symbolic link; LungSeg never follows it (it could point outside "
                                   "the output folder): remove it") from None
            raise LungSegError(f"{lock}: cannot open the lock file ({os_error_message(e)})") from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            os.close(fd)
            what = "hard link" if stat.S_ISREG(st.st_mode) else "special file"
            raise LungSegError(f"{lock}: is not a plain file of its own ({what}); "
                               "LungSeg writes only its own lock file: remove it")
        return fd

    # --------------------------------------------------------------------------------- temporaries
    def _entries(self, token: str) -> list:
        prefix = f"{TEMP_PREFIX}{token}."
        try:
            return [e for e in self.path.iterdir() if e.name.startswith(prefix)]
        except OSError:
            return []

    def _remove_temporaries(self, token: str) -> int:
        if not all(c.isalnum() for c in token):  # the lock held something we did not write
            return 0
        entries = self._entries(token)
        for entry in entries:
            _remove(entry)
        return len(entries)

    # ----------------------------------------------------------------------------------- case folders
    def assign(self, cases: list) -> list:
        """Give each ``(name, input)`` a folder name that is its own across runs: ``name`` unless that folder
        holds another input's finished case (or is taken in this run), then ``name_2``, ..."""
        taken, seen, out = set(), set(), []
        for name, path in cases:
            key = _input_key(path)
            if key in seen:  # the same input given twice (a file and its folder, or a repeated argument)
                continue
            seen.add(key)
            k, new = 1, name
            while new.lower() in taken or not self._folder_fits(new, path):
                k += 1
                new = f"{name}_{k}"
            taken.add(new.lower())
            out.append((new, path))
        return out

    def _folder_fits(self, name: str, path) -> bool:
        report = self.path / name / "measurements.json"
        try:
            recorded = json.loads(report.read_text()).get("input")
        except (OSError, ValueError, AttributeError):
            return True  # no finished case there (or unreadable): the usual --resume/--overwrite rules apply
        return recorded is None or _same_input(recorded, path)

    def write_case(self, case: str, write) -> dict:
        """``write(folder)`` fills a temporary folder and returns the case report; the folder is then renamed
        to ``OUTDIR/case`` (replacing a previous one only after the new one is complete)."""
        case_dir = self.path / case
        tmp = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{self.token}.{case}.", suffix=".partial", dir=self.path))
        try:
            os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes 0700; case folders get the user's umask
            report = write(tmp)
            old = None
            if case_dir.exists() or case_dir.is_symlink():
                old = self.path / f"{TEMP_PREFIX}{self.token}.{case}.old"
                case_dir.replace(old)
            tmp.replace(case_dir)
            if old is not None:
                _remove(old)
            self.rows[case] = csv_rows(case, report)
            return report
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def finished_report(self, case: str) -> dict | None:
        try:
            return json.loads((self.path / case / "measurements.json").read_text())
        except (OSError, ValueError):
            return None

    def _finished_rows(self) -> dict:
        rows = {}
        for entry in sorted(self.path.iterdir()):
            if entry.name.startswith(".") or entry.is_symlink() or not entry.is_dir():
                continue
            report = self.finished_report(entry.name)
            if isinstance(report, dict) and "structures" in report:
                try:
                    rows[entry.name] = csv_rows(entry.name, report)
                except (KeyError, TypeError, AttributeError):
                    continue  # a measurements.json LungSeg did not write: not listed, not touched
        return rows

    # ---------------------------------------------------------------------------------- summaries
    def previous_errors(self) -> list:
        try:
            with open(self.path / "errors.csv", newline="", encoding="utf-8") as f:
                return [r for r in csv.DictReader(f) if set(ERROR_COLUMNS) <= set(r)]
        except (OSError, ValueError, csv.Error):
            return []

    def write_summaries(self, errors: list, tried: set, previous: list) -> list:
        """measurements.csv for every finished case folder; errors.csv for this run's failures and earlier
        failures of cases not tried again (and still without a finished folder). Returns the errors.csv rows."""
        rows = [r for case in sorted(self.rows, key=str.lower) for r in self.rows[case]]
        write_text(self.path / "measurements.csv", rows_to_csv(rows))
        kept = [r for r in previous if r["case"] not in tried and r["case"] not in self.rows]
        all_errors = kept + list(errors)
        if all_errors:
            write_text(self.path / "errors.csv", rows_to_csv(all_errors, ERROR_COLUMNS))
        elif (self.path / "errors.csv").is_file():
            (self.path / "errors.csv").unlink()
        return all_errors


def _remove(entry: Path) -> None:
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry, ignore_errors=True)
    else:
        try:
            entry.unlink()
        except OSError:
            pass
