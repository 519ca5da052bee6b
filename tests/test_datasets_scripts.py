"""datasets/ download scripts, offline: file:// URLs to archives made here."""
import hashlib
import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

DATASETS = Path(__file__).resolve().parents[1] / "datasets"
sys.path.insert(0, str(DATASETS))
import _download as dl  # noqa: E402
import flowers17  # noqa: E402
import flowers102  # noqa: E402


def md5(path):
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def make_tgz(path, files):
    """files: {archive name: bytes}."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def jpg_bytes(seed):
    a = np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "JPEG")
    return buf.getvalue()


def leftovers(root):
    """Temporary files or folders the helper might have left behind."""
    return [p.name for p in Path(root).iterdir() if p.name.startswith(".")] if Path(root).exists() else []


def test_archive_good_md5_unpacks(tmp_path):
    src = make_tgz(tmp_path / "a.tgz", {"jpg/x.jpg": b"x", "jpg/y.jpg": b"yy", "other.txt": b"o"})
    root = tmp_path / "root"
    out = dl.fetch(root, src.as_uri(), md5(src), unpack_dirs=["jpg"])
    assert out == [str(root / "jpg")]
    assert (root / "jpg" / "y.jpg").read_bytes() == b"yy"
    assert not (root / "other.txt").exists() and not (root / "a.tgz").exists()
    assert leftovers(root) == []
    # a second run finds it in place and downloads nothing
    dl.fetch(root, (tmp_path / "gone.tgz").as_uri(), "0" * 32, unpack_dirs=["jpg"])


def test_archive_bad_md5_leaves_nothing(tmp_path):
    src = make_tgz(tmp_path / "a.tgz", {"jpg/x.jpg": b"x"})
    root = tmp_path / "root"
    with pytest.raises(dl.DownloadError, match="md5 mismatch") as err:
        dl.fetch(root, src.as_uri(), "0" * 32, unpack_dirs=["jpg"])
    assert "\n" not in str(err.value)
    assert not (root / "jpg").exists() and leftovers(root) == []


def test_plain_file_good_and_bad_md5(tmp_path):
    src = tmp_path / "setid.mat"
    src.write_bytes(b"matlab-ish bytes")
    root = tmp_path / "root"
    with pytest.raises(dl.DownloadError, match="md5"):
        dl.fetch(root, src.as_uri(), "f" * 32)
    assert list(root.iterdir()) == []
    dl.fetch(root, src.as_uri(), md5(src))
    assert (root / "setid.mat").read_bytes() == b"matlab-ish bytes" and leftovers(root) == []


def test_missing_url_is_one_line_error(tmp_path):
    with pytest.raises(dl.DownloadError, match="cannot download") as err:
        dl.fetch(tmp_path / "root", (tmp_path / "nope.tgz").as_uri(), None, unpack_dirs=["jpg"])
    assert "\n" not in str(err.value) and leftovers(tmp_path / "root") == []


def test_not_an_archive(tmp_path):
    src = tmp_path / "a.tgz"
    src.write_bytes(b"garbage" * 100)
    with pytest.raises(dl.DownloadError, match="cannot unpack"):
        dl.fetch(tmp_path / "root", src.as_uri(), md5(src), unpack_dirs=["jpg"])
    assert list((tmp_path / "root").iterdir()) == []


def test_unexpected_layout(tmp_path):
    src = make_tgz(tmp_path / "a.tgz", {"images/x.jpg": b"x"})
    with pytest.raises(dl.DownloadError, match="does not contain jpg/"):
        dl.fetch(tmp_path / "root", src.as_uri(), md5(src), unpack_dirs=["jpg"])
    assert list((tmp_path / "root").iterdir()) == []


def test_path_traversal_refused(tmp_path):
    src = make_tgz(tmp_path / "a.tgz", {"jpg/x.jpg": b"x", "../evil.txt": b"e"})
    with pytest.raises(dl.DownloadError, match="outside"):
        dl.fetch(tmp_path / "root", src.as_uri(), md5(src), unpack_dirs=["jpg"])
    assert not (tmp_path / "evil.txt").exists() and list((tmp_path / "root").iterdir()) == []


def test_failed_content_check_leaves_nothing(tmp_path):
    src = make_tgz(tmp_path / "a.tgz", {"jpg/x.jpg": b"x"})
    with pytest.raises(dl.DownloadError, match="holds 1 .jpg files, expected 2"):
        dl.fetch(tmp_path / "root", src.as_uri(), md5(src), unpack_dirs=["jpg"],
                 verify=dl.expect_count("jpg", ".jpg", 2))
    assert list((tmp_path / "root").iterdir()) == []


def test_lenient_md5_lets_the_content_decide(tmp_path, capsys):
    src = make_tgz(tmp_path / "a.tgz", {"jpg/x.jpg": b"x"})
    root = tmp_path / "root"
    dl.fetch(root, src.as_uri(), "0" * 32, unpack_dirs=["jpg"],
             verify=dl.expect_count("jpg", ".jpg", 1), md5_strict=False)
    assert (root / "jpg" / "x.jpg").exists()
    assert "checking its content instead" in capsys.readouterr().out


def test_run_turns_errors_into_one_line_exit(capsys):
    def main():
        raise dl.DownloadError("md5 mismatch for x")
    with pytest.raises(SystemExit) as ex:
        dl.run(main)
    assert ex.value.code == 1
    assert capsys.readouterr().err == "error: md5 mismatch for x\n"


def _serve(tmp_path, files):
    """A folder acting as the dataset's web server; returns its file:// base URL."""
    srv = tmp_path / "srv"
    srv.mkdir()
    for name, make in files.items():
        make(srv / name)
    return srv.as_uri() + "/"


def test_flowers17_script(tmp_path, monkeypatch):
    jpgs = {f"jpg/image_{n:04d}.jpg": jpg_bytes(n) for n in (1, 2, 3)}
    tris = {f"trimaps/image_{n:04d}.png": b"png" for n in (1, 2)}
    base = _serve(tmp_path, {
        "17flowers.tgz": lambda p: make_tgz(p, {**jpgs, "jpg/files.txt": b"list"}),
        "datasplits.mat": lambda p: p.write_bytes(b"splits"),
        "trimaps.tgz": lambda p: make_tgz(p, {**tris, "trimaps/imlist.mat": b"l"}),
    })
    fake = tmp_path / "srv"
    text = "".join(f"{Path(n).name} {hashlib.md5(b).hexdigest()}\n" for n, b in sorted(jpgs.items()))
    monkeypatch.setattr(flowers17, "N_IMAGES", 3)
    monkeypatch.setattr(flowers17, "JPG_DIGEST", hashlib.md5(text.encode()).hexdigest())
    monkeypatch.setitem(flowers17.FILES, "datasplits.mat", md5(fake / "datasplits.mat"))
    root = tmp_path / "f17"
    flowers17.main(["--root", str(root)], base_url=base)  # 17flowers.tgz md5 differs: content decides
    assert sorted(os.listdir(root / "jpg")) == ["files.txt", "image_0001.jpg", "image_0002.jpg",
                                                "image_0003.jpg"]
    assert (root / "datasplits.mat").exists() and (root / "trimaps" / "image_0002.png").exists()
    assert leftovers(root) == []


def test_flowers17_script_wrong_images_refused(tmp_path, monkeypatch):
    base = _serve(tmp_path, {"17flowers.tgz": lambda p: make_tgz(
        p, {f"jpg/image_{n:04d}.jpg": jpg_bytes(n) for n in (1, 2, 3)})})
    monkeypatch.setattr(flowers17, "N_IMAGES", 3)
    root = tmp_path / "f17"
    with pytest.raises(dl.DownloadError, match="differ from the published dataset"):
        flowers17.main(["--root", str(root), "--no-trimaps"], base_url=base)
    assert not (root / "jpg").exists() and leftovers(root) == []


def test_flowers102_script(tmp_path, monkeypatch):
    base = _serve(tmp_path, {
        "102flowers.tgz": lambda p: make_tgz(p, {f"jpg/image_{n:05d}.jpg": jpg_bytes(n) for n in (1, 2)}),
        "imagelabels.mat": lambda p: p.write_bytes(b"labels"),
        "setid.mat": lambda p: p.write_bytes(b"setid"),
        "102segmentations.tgz": lambda p: make_tgz(p, {"segmim/segmim_00001.jpg": jpg_bytes(9)}),
    })
    srv = tmp_path / "srv"
    for name in ("102flowers.tgz", "imagelabels.mat", "setid.mat"):
        monkeypatch.setitem(flowers102.FILES, name, md5(srv / name))
    monkeypatch.setattr(flowers102, "N_IMAGES", 2)
    root = tmp_path / "f102"
    flowers102.main(["--root", str(root)], base_url=base)
    assert sorted(os.listdir(root)) == ["imagelabels.mat", "jpg", "segmim",
                                        "setid.mat"]
    monkeypatch.setitem(flowers102.FILES, "setid.mat", "0" * 32)
    (root / "setid.mat").unlink()
    with pytest.raises(dl.DownloadError, match="md5 mismatch"):
        flowers102.main(["--root", str(root), "--no-segmentations"], base_url=base)
    assert not (root / "setid.mat").exists() and leftovers(root) == []


def test_published_md5s_match_torchvision():
    """Our Flowers102 md5s are the ones torchvision's Flowers102 dataset checks."""
    tv = pytest.importorskip("torchvision.datasets.flowers102")
    recorded = dict(tv.Flowers102._file_dict.values())
    for name in ("102flowers.tgz", "imagelabels.mat", "setid.mat"):
        assert flowers102.FILES[name] == recorded[name]


def test_jpg_digest_matches_shared_copy():
    from conftest import SHARED
    shared = SHARED / "flowers17" / "jpg"
    if not shared.is_dir():
        pytest.skip("no ../shared/datasets/flowers17 here")
    assert flowers17.jpg_digest(shared) == (1360, flowers17.JPG_DIGEST)


@pytest.mark.parametrize("script", ["flowers17.py", "flowers102.py"])
def test_scripts_run_as_scripts(script):
    r = subprocess.run([sys.executable, str(DATASETS / script), "--help"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and "--root" in r.stdout
