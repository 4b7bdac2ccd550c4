"""`inspectd serve`: inspectd's networks as Triton models (PyTriton), each with Triton's dynamic batcher.

The networks are loaded once by the same ModelStore the daemon uses locally and bound as Python callables;
PyTriton runs the bundled tritonserver, whose Python-backend stub embeds ``libpython3.X.so``. That library
must be the one of the interpreter running this process (a stub that loads the system's 3.11.2 library
under a pyenv 3.11.7 standard library fails at model load), so the interpreter's own library directory is
put first on ``LD_LIBRARY_PATH`` before the server starts.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import socket
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from inspectd.config import ServeConfig, Settings
from inspectd.errors import ConfigError
from inspectd.logs import get_logger
from inspectd.models.store import ModelStore
from inspectd.models.tilepass import LocalTilePass
from inspectd.serving import protocol

log = get_logger("serving.server")


def python_library_dir() -> Path:
    """The folder holding this interpreter's shared libpython, which the Triton Python stub must load."""
    libdir = sysconfig.get_config_var("LIBDIR")
    soname = sysconfig.get_config_var("INSTSONAME") or sysconfig.get_config_var("LDLIBRARY")
    if not sysconfig.get_config_var("Py_ENABLE_SHARED") or not libdir or not (Path(libdir) / soname).exists():
        raise ConfigError(
            f"{sys.executable} has no shared libpython ({soname} in {libdir}); Triton's Python stub needs one: "
            "build the serve environment from a Python built with --enable-shared (Debian's /usr/bin/python3.11, "
            "or pyenv with PYTHON_CONFIGURE_OPTS=--enable-shared)"
        )
    return Path(libdir)


def use_own_libpython(environ: dict[str, str] | None = None) -> None:
    """Put this interpreter's libpython first on LD_LIBRARY_PATH (PyTriton passes it to the server)."""
    env = os.environ if environ is None else environ
    libdir = str(python_library_dir())
    parts = [p for p in env.get("LD_LIBRARY_PATH", "").split(":") if p and p != libdir]
    env["LD_LIBRARY_PATH"] = ":".join([libdir, *parts])


def _texts(column: np.ndarray) -> list[str]:
    return [bytes(v).decode("utf-8") for v in column.reshape(-1)]


class ServedModels:
    """Inference callables over one ModelStore, and the description daemons read before their first call."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.cfg = settings.serve
        self.store = ModelStore(settings.models, settings.pipeline)

    def load(self) -> None:
        """Load (and warm, when models.warmup) every network in serve.models before the server opens."""
        wanted = set(self.cfg.models)
        if "isnet" in wanted:
            self.store.isnet()
        if "tiles" in wanted:
            self.store.clipseg()
            self.store.clip()
        if "sam" in wanted:
            self.store.sam()
        if "backbone" in wanted:
            self.store.backbone()
        if self.settings.models.warmup:
            self.store.warmup()

    def info(self) -> dict[str, Any]:
        """Model ids, input sizes and logit scales: what a daemon's client needs to stand in for the networks."""
        info: dict[str, Any] = {
            "models": self.store.describe(),
            "max_batch_size": self.cfg.max_batch_size,
            "served": sorted(self.cfg.models),
        }
        if "isnet" in self.cfg.models:
            isnet = self.store.isnet()
            info["isnet"] = {
                "model_id": isnet.model_id,
                "random": isnet.random,
                "input_size": isnet.input_size,
            }
        if "tiles" in self.cfg.models:
            clipseg, clip = self.store.clipseg(), self.store.clip()
            info["clipseg"] = {
                "model_id": clipseg.model_id,
                "random": clipseg.random,
                "input_size": clipseg.input_size,
                "logit_scale": clipseg.logit_scale,
            }
            info["clip"] = {"model_id": clip.model_id, "random": clip.random, "logit_scale": clip.logit_scale}
        if "sam" in self.cfg.models:
            sam = self.store.sam()
            info["sam"] = {"model_id": sam.model_id, "random": sam.random}
        if "backbone" in self.cfg.models:
            bb = self.store.backbone()
            info["backbone"] = {
                "model_id": bb.model_id,
                "stages": list(bb.stages),
                "layers": list(bb.layers),
                "stride": bb.stride,
                "channels": bb.channels,
            }
        return info

    # ---- inference callables (batched ones take and return arrays with the batch first) ---------------------

    def infer_isnet(self, image: np.ndarray) -> dict[str, np.ndarray]:
        return {"prob": self.store.isnet().run_resized(image)}

    def infer_tiles(self, tiles: np.ndarray, cond: np.ndarray) -> dict[str, np.ndarray]:
        keys: dict[bytes, int] = {}
        groups = np.array([keys.setdefault(c.tobytes(), len(keys)) for c in cond], np.int64)
        first = {g: i for i, g in reversed(list(enumerate(groups)))}
        conds = [torch.from_numpy(np.ascontiguousarray(cond[first[g]])) for g in range(len(keys))]
        maps, embeds = LocalTilePass(self.store.clipseg(), self.store.clip()).run(tiles, conds, groups)
        return {"map": maps, "embed": embeds.float().numpy()}

    def infer_clipseg_text(self, text: np.ndarray) -> dict[str, np.ndarray]:
        return {"features": self.store.clipseg().encode_text(_texts(text)).numpy()}

    def infer_clip_text(self, text: np.ndarray) -> dict[str, np.ndarray]:
        return {"features": self.store.clip().encode_text(_texts(text)).numpy()}

    def infer_backbone(self, image: np.ndarray) -> dict[str, np.ndarray]:
        return {"features": self.store.backbone().features(image).float().numpy()}

    def infer_sam(self, requests: list[Any]) -> list[dict[str, np.ndarray]]:
        results = []
        for request in requests:
            image = np.ascontiguousarray(request["image"])
            masks = self.store.sam().masks(image)
            stacked = np.stack(masks) if masks else np.zeros((0, *image.shape[:2]), bool)
            results.append({"masks": stacked.astype(np.uint8)})
        return results

    def infer_info(self, requests: list[Any]) -> list[dict[str, np.ndarray]]:
        text = json.dumps(self.info()).encode("utf-8")
        return [{"info": np.array([text], dtype=np.object_)} for _ in requests]


def _contiguous(fn: Callable) -> Callable:
    """PyTriton copies outputs through shared memory, which takes C-contiguous arrays only."""

    def as_contiguous(result: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {k: np.ascontiguousarray(v) for k, v in result.items()}

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        out = fn(*args, **kwargs)
        return [as_contiguous(r) for r in out] if isinstance(out, list) else as_contiguous(out)

    return wrapped


def _batcher(cfg: ServeConfig) -> Any:
    from pytriton.model_config import DynamicBatcher

    preferred = sorted({b for b in cfg.preferred_batch_sizes if b <= cfg.max_batch_size})
    return DynamicBatcher(
        preferred_batch_size=preferred or None,
        max_queue_delay_microseconds=round(cfg.max_queue_delay_ms * 1000),
    )


def bind_models(triton: Any, served: ServedModels) -> list[str]:
    """Bind every served network to the PyTriton server; returns the Triton model names."""
    from pytriton.decorators import batch
    from pytriton.model_config import ModelConfig, Tensor

    cfg = served.cfg
    batched = ModelConfig(max_batch_size=cfg.max_batch_size, batcher=_batcher(cfg))
    single = ModelConfig(batching=False)
    names: list[str] = []

    def add(name: str, fn: Callable, inputs: list, outputs: list, config: Any, batching: bool = True) -> None:
        fn = _contiguous(fn)
        funcs = [batch(fn) if batching else fn for _ in range(cfg.instances)]
        triton.bind(
            model_name=name, infer_func=funcs, inputs=inputs, outputs=outputs, config=config, strict=True
        )
        names.append(name)

    def t(name: str, dtype: Any, *shape: int) -> Any:
        return Tensor(name=name, dtype=dtype, shape=shape)

    wanted = set(cfg.models)
    if "isnet" in wanted:
        s = served.store.isnet().input_size
        image, prob = t("image", np.uint8, s, s, 3), t("prob", np.float32, s, s)
        add(protocol.ISNET, served.infer_isnet, [image], [prob], batched)
    if "tiles" in wanted:
        s = served.store.clipseg().input_size
        inputs = [t("tiles", np.uint8, s, s, 3), t("cond", np.float32, -1, -1)]
        outputs = [t("map", np.float32, s, s), t("embed", np.float32, -1)]
        add(protocol.TILES, served.infer_tiles, inputs, outputs, batched)
        text, features = [t("text", np.bytes_, 1)], [t("features", np.float32, -1)]
        add(protocol.CLIPSEG_TEXT, served.infer_clipseg_text, text, features, batched)
        add(protocol.CLIP_TEXT, served.infer_clip_text, text, features, batched)
    if "sam" in wanted:
        image, masks = t("image", np.uint8, -1, -1, 3), t("masks", np.uint8, -1, -1, -1)
        add(protocol.SAM, served.infer_sam, [image], [masks], single, False)
    if "backbone" in wanted:
        # tiles of one size per request (pipeline.reference.tile); the batcher joins requests of equal shape
        image, features = t("image", np.uint8, -1, -1, 3), t("features", np.float32, -1, -1, -1)
        add(protocol.BACKBONE, served.infer_backbone, [image], [features], batched)
    # bound (and so loaded) last: once it is ready every network is, which is what clients wait for
    add(
        protocol.INFO,
        served.infer_info,
        [t("request", np.int32, 1)],
        [t("info", np.bytes_, 1)],
        single,
        False,
    )
    return names


def check_ports_free(cfg: ServeConfig) -> None:
    """Refuse to start when a port is taken (Triton would otherwise half-start next to the other server)."""
    for key in ("grpc_port", "http_port", "metrics_port"):
        port = getattr(cfg, key)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no owner
            try:
                sock.bind((cfg.host, port))
            except OSError as exc:
                raise ConfigError(
                    f"serve.{key} = {port} on {cfg.host} is in use ({exc.strerror}): another `inspectd serve` "
                    "or Triton runs there; stop it or choose other ports"
                ) from exc


def triton_config(cfg: ServeConfig, log_file: Path | None = None) -> Any:
    """PyTriton's server settings: every endpoint on ``serve.host``, the configured ports."""
    from pytriton.triton import TritonConfig

    return TritonConfig(
        http_address=cfg.host,
        http_port=cfg.http_port,
        grpc_address=cfg.host,
        grpc_port=cfg.grpc_port,
        metrics_address=cfg.host,
        metrics_port=cfg.metrics_port,
        allow_gpu_metrics=False,
        log_file=log_file,
    )


_WORKSPACE = re.compile(r'key:\s*"workspace-path"\s*value\s*\{\s*string_value:\s*"([^"]+)"')
STALE_AFTER_S = 300.0  # a copy this fresh may belong to a server still starting up


def server_alive(workspace: Path) -> bool:
    """A PyTriton workspace belongs to a running server while one of its model sockets accepts a connection."""
    for path in workspace.glob("*.sock"):
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(0.5)
        try:
            probe.connect(str(path))
            return True
        except OSError:
            continue
        finally:
            probe.close()
    return False


def _remove(path: Path, removed: list[Path]) -> None:
    try:
        shutil.rmtree(path)
    except OSError as exc:
        log.warning("triton_leftover_kept", path=str(path), error=str(exc))
    else:
        removed.append(path)


def remove_triton_leftovers(
    home: Path | None = None, tmp: Path | None = None, now: float | None = None
) -> list[Path]:
    """Triton copies every model PyTriton loads into ``/tmp/folderXXXXXX``, and PyTriton keeps its sockets in a
    workspace under ``home`` (PyTriton's home); a killed server leaves both behind, so a line PC restarting
    ``serve`` would collect them. Remove those of every server that is gone (workspace missing, or no socket in
    it answers and it is older than :data:`STALE_AFTER_S`); a running server's files and folders that are not
    such leftovers are left alone. Returns what was removed. Hand-written: no library knows this layout."""
    now = time.time() if now is None else now
    alive = functools.cache(server_alive)  # one probe per workspace, not one per model copy

    def gone(workspace: Path, age: float) -> bool:
        return not workspace.exists() or (age >= STALE_AFTER_S and not alive(workspace))

    removed: list[Path] = []
    for folder in sorted(Path(tmp or tempfile.gettempdir()).glob("folder*")):
        try:
            match = _WORKSPACE.search((folder / "config.pbtxt").read_text(errors="replace"))
            age = now - folder.stat().st_mtime
        except OSError:
            continue
        if match is not None and gone(Path(match.group(1)), age):
            _remove(folder, removed)
    for workspace in sorted(home.glob("workspace_*")) if home else []:
        try:
            age = now - workspace.stat().st_mtime
        except OSError:
            continue
        if workspace.is_dir() and gone(workspace, age):
            _remove(workspace, removed)
    if removed:
        log.info("triton_leftovers_removed", count=len(removed), paths=[str(p) for p in removed[:6]])
    return removed


def serve(settings: Settings, stop: threading.Event, on_ready: Callable[[list[str]], None]) -> None:
    """Load the networks, start Triton with them and block until ``stop`` is set."""
    try:
        from pytriton.triton import Triton, TritonSecurityConfig
    except ImportError as exc:
        raise ConfigError(
            "`inspectd serve` needs PyTriton: pip install 'inspectd[serve]' (see README, Scaling out)"
        ) from exc
    use_own_libpython()
    check_ports_free(settings.serve)
    from pytriton.constants import PYTRITON_HOME

    remove_triton_leftovers(PYTRITON_HOME)
    served = ServedModels(settings)
    served.load()
    cfg = settings.serve
    log.info(
        "triton_starting", host=cfg.host, grpc_port=cfg.grpc_port, http_port=cfg.http_port, models=cfg.models
    )
    # PyTriton guards its admin endpoints with a token; statistics stay open: they are how a plant (and
    # `inspectd bench`) sees the batches Triton forms
    security = TritonSecurityConfig(
        restricted_endpoints=["shared-memory", "model-repository", "trace", "logging"]
    )
    with Triton(config=triton_config(cfg), security_config=security) as triton:
        names = bind_models(triton, served)
        triton.run()
        log.info(
            "triton_ready",
            models=names,
            grpc=f"{cfg.host}:{cfg.grpc_port}",
            metrics=f"http://{cfg.host}:{cfg.metrics_port}/metrics",
            max_batch_size=cfg.max_batch_size,
            preferred_batch_sizes=cfg.preferred_batch_sizes,
            max_queue_delay_ms=cfg.max_queue_delay_ms,
            instances=cfg.instances,
        )
        on_ready(names)
        stop.wait()
        log.info("triton_stopping")
    remove_triton_leftovers(PYTRITON_HOME)  # PyTriton removed this server's workspace on the way out
