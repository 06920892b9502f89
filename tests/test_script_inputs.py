"""The scripts a user points at their own files: 16-bit images, files that are not images,
malformed records, a --label-key that only some runs have (issue 29 items 8, 9, 13)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

imageio = pytest.importorskip("imageio.v3")


def test_a_16_bit_png_reads_as_the_same_image_as_its_8_bit_copy(tmp_path: Path) -> None:
    from scripts.predict_depth import read_grey

    rng = np.random.default_rng(0)
    eight = rng.integers(0, 256, size=(12, 20), dtype=np.uint8)
    sixteen = eight.astype(np.uint16) * 257  # 255 -> 65535: the same brightness at 16 bits
    imageio.imwrite(tmp_path / "a8.png", eight)
    imageio.imwrite(tmp_path / "a16.png", sixteen)
    a8, a16 = read_grey(tmp_path / "a8.png"), read_grey(tmp_path / "a16.png")
    assert a16.shape == (1, 1, 12, 20)
    torch.testing.assert_close(a16, a8, atol=1e-6, rtol=0)
    torch.testing.assert_close(a8[0, 0], torch.from_numpy(eight / 255.0).float())
    # a dark 16-bit image stays dark (no stretching by its maximum)
    imageio.imwrite(tmp_path / "dark.png", (sixteen // 16).astype(np.uint16))
    assert float(read_grey(tmp_path / "dark.png").max()) < 1 / 15


def test_a_file_that_is_no_image_is_named(tmp_path: Path) -> None:
    from scripts.predict_depth import read_grey

    text = tmp_path / "notes.png"
    text.write_text("not an image\n")
    with pytest.raises(ValueError, match=f"{text} cannot be read as an image.*PNG, JPEG or TIFF"):
        read_grey(text)
    floats = tmp_path / "f.tiff"
    imageio.imwrite(floats, np.full((4, 4), 3.0, dtype=np.float32))
    with pytest.raises(ValueError, match=r"float image must hold values in \[0, 1\], got 3 to 3"):
        read_grey(floats)


def _run_folder(root: Path, name: str, loss: dict, seed: int = 0) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "curve.csv").write_text("epoch,step,error_pct\n1,10,5.0\n2,20,4.0\n")
    record = {
        "status": "finished",
        "loss": loss["name"],
        "seed": seed,
        "config": {"loss": loss},
        "metrics": {},
    }
    (folder / "metrics.json").write_text(json.dumps(record))
    return folder


def test_plot_curves_label_key_a_loss_without_it_and_where_it_wrote(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    pytest.importorskip("matplotlib")
    from scripts.plot_curves import main

    _run_folder(tmp_path / "runs", "lmi", {"name": "lmi", "bins": 11})
    _run_folder(tmp_path / "runs", "l2", {"name": "l2"})
    out = main([str(tmp_path / "runs"), "--label-key", "loss.bins", "--out", str(tmp_path / "c.png")])
    assert out.is_file() and f"wrote {out}" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # a key no run has is a typo, named
        main([str(tmp_path / "runs"), "--label-key", "loss.binz", "--out", str(tmp_path / "d.png")])
    assert "no run's config has 'loss.binz'" in capsys.readouterr().err


def test_plot_curves_names_a_malformed_record(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from scripts.plot_curves import main

    broken = _run_folder(tmp_path, "broken", {"name": "l2"}) / "metrics.json"
    broken.write_text("{not json")
    with pytest.raises(SystemExit):
        main([str(tmp_path), "--out", str(tmp_path / "c.png")])
    assert f"{broken} is not a readable run record" in capsys.readouterr().err
