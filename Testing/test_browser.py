"""index.html of the bundled samples rendered by a real browser (headless Debian chromium): the page is not
blank, shows the thumbnails (relative links resolve), holds every case name and volume, and sorts."""

import re
import shutil
import subprocess
import tempfile

import numpy as np
import pytest
from conftest import SAMPLES

from LungSegLib.cli import main
from LungSegLib.figures import LEFT_RGB, RIGHT_RGB

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium(*args, timeout=120):
    exe = next((shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)), None)
    if exe is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium); browser test skipped")
    with tempfile.TemporaryDirectory() as profile:
        try:
            proc = subprocess.run([exe, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                                  text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as e:
            pytest.skip(f"chromium could not run here ({type(e).__name__}: {e}); browser test skipped")
    if proc.returncode != 0:
        pytest.skip(f"chromium could not start here (exit {proc.returncode}: {proc.stderr.strip()[-300:]}); "
                    "browser test skipped")
    return proc.stdout


@pytest.fixture(scope="module")
def outdir(tmp_path_factory):
    out = tmp_path_factory.mktemp("browser") / "out"
    main(["segment", str(SAMPLES / "ct-64.nrrd"), str(SAMPLES / "montgomery_MCUCXR_0001_0.png"),
          str(SAMPLES / "missing.nrrd"), "-o", str(out), "--engine", "auto", "--quiet"])
    return out


def test_index_screenshot_is_not_blank_and_shows_the_thumbnails(outdir, tmp_path):
    from PIL import Image

    shot = tmp_path / "index.png"
    chromium(f"--screenshot={shot}", "--window-size=1400,900", (outdir / "index.html").as_uri())
    if not shot.exists():
        pytest.skip("chromium ran but wrote no screenshot; browser test skipped")
    rgb = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert rgb.std() > 20 and len(np.unique(rgb.reshape(-1, 3), axis=0)) > 500
    for colour in (RIGHT_RGB, LEFT_RGB):  # the lung outlines of the overlay thumbnails were loaded
        assert (np.abs(rgb - colour).sum(-1) < 30).sum() > 100
    assert (np.abs(rgb - (253, 232, 232)).sum(-1) < 6).sum() > 2000  # the failed case's row is highlighted


def _texts(dom):
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", dom, flags=re.S)
    return [re.sub(r"<[^>]+>", " ", r) for r in rows[1:]]


def test_index_text_holds_every_case_and_volume_and_sorts(outdir):
    import json

    dom = chromium("--dump-dom", (outdir / "index.html").as_uri())
    text = " ".join(_texts(dom))
    ct = json.loads((outdir / "ct-64" / "measurements.json").read_text())
    for structure in ("both", "right", "left"):
        assert f"{ct['structures'][structure]['volume_ml']:.0f}" in text
    for case in ("ct-64", "montgomery_MCUCXR_0001_0", "missing"):
        assert case in text
    assert "no such file" in text
    ordered = _texts(chromium("--dump-dom", (outdir / "index.html").as_uri() + "#sort=1-desc"))
    names = [re.search(r"(ct-64|montgomery_MCUCXR_0001_0|missing)", r).group(1) for r in ordered]
    assert names == ["montgomery_MCUCXR_0001_0", "missing", "ct-64"]  # by case name, descending
