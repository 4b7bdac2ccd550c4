"""models.backend = "triton": the daemon's networks are calls to `inspectd serve` over gRPC (tritonclient).

``TritonStore`` is a ModelStore whose networks are stand-ins with the same methods the pipeline calls; the
preprocessing that needs no network (resizing, tiling, prompts, fusion) stays here. Every call retries,
with a fresh connection, for ``models.triton_deadline_s`` while the server is unreachable (a restart); after
that its part gets ``error``/``inference_unavailable``, and later calls fail at once until the server answers
again. A request the server does not answer within ``models.triton_timeout_s`` (a slow or overloaded server)
is not resent: its part gets ``inference_unavailable`` at once.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from inspectd.config import ModelsConfig, PipelineConfig
from inspectd.errors import ConfigError, InferenceUnavailable
from inspectd.logs import get_logger
from inspectd.models.isnet import check_image, network_input, restore_size
from inspectd.models.store import ModelStore
from inspectd.serving import protocol

log = get_logger("serving.client")

# gRPC statuses that mean "the server is not (yet) there", as opposed to a request it refused; a request that
# timed out is not sent again (the server may still be working on it: resending would pile work on a slow server)
TIMED_OUT = "StatusCode.DEADLINE_EXCEEDED"
RETRYABLE = {
    "StatusCode.UNAVAILABLE",
    "StatusCode.CANCELLED",
    "StatusCode.NOT_FOUND",
    "StatusCode.UNKNOWN",
    "StatusCode.RESOURCE_EXHAUSTED",
}


class InferenceError(RuntimeError):
    """The server answered a request with an error (a bad input or a fault in a network): not retried."""


def _grpc() -> Any:
    try:
        import tritonclient.grpc as grpcclient
    except ImportError as exc:
        raise ConfigError(
            "models.backend = 'triton' needs tritonclient: pip install 'inspectd[triton]'"
        ) from exc
    return grpcclient


class TritonConnection:
    """Calls to one Triton server with per-request timeouts, reconnects and a deadline; tracks reachability.

    ``state`` is ``connecting`` until the first answer, then ``ready``, ``reconnecting`` while a call retries,
    and ``unavailable`` once a call ran out of deadline (until the server answers again).
    """

    def __init__(self, url: str, timeout_s: float, deadline_s: float) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.deadline_s = deadline_s
        self.state = "connecting"
        self.listeners: list[Callable[[str], None]] = []
        self._grpc = _grpc()
        self._local = threading.local()
        self._lock = threading.Lock()
        self._info: dict[str, Any] | None = None
        self._stale = True
        self._stop = threading.Event()
        self._prober: threading.Thread | None = None

    def _client(self, fresh: bool = False) -> Any:
        client = getattr(self._local, "client", None)
        if client is None or fresh:
            if client is not None:
                try:
                    client.close()
                except Exception as exc:  # a broken channel may not close cleanly; it is being replaced
                    log.debug("triton_close_failed", error=str(exc))
            client = self._local.client = self._grpc.InferenceServerClient(self.url)
        return client

    def set_state(self, state: str, **context: Any) -> None:
        """Record the server's state (ready, unavailable, ...), log a change, and tell the listeners."""
        with self._lock:
            old, self.state = self.state, state
            if state != "ready" and old == "ready":
                self._stale = True  # a restarted server may hold other weights: describe it again
        if old != state:
            level = log.info if state == "ready" else log.warning
            level("inference_server_state", url=self.url, state=state, previous=old, **context)
            for listener in list(self.listeners):
                listener(state)

    def infer(self, model: str, inputs: dict[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
        """One request; retried on transport faults until the deadline, then InferenceUnavailable."""
        grpcclient = self._grpc
        from tritonclient.utils import InferenceServerException, np_to_triton_dtype

        started = time.monotonic()
        deadline = started + (0.0 if self.state == "unavailable" else self.deadline_s)
        attempt, fresh, last = 0, False, ""
        while True:
            attempt += 1
            request = []
            for name, array in inputs.items():
                dtype = "BYTES" if array.dtype == np.object_ else np_to_triton_dtype(array.dtype)
                item = grpcclient.InferInput(name, list(array.shape), dtype)
                item.set_data_from_numpy(array)
                request.append(item)
            wanted = [grpcclient.InferRequestedOutput(name) for name in outputs]
            try:
                result = self._client(fresh).infer(
                    model, request, outputs=wanted, client_timeout=self.timeout_s
                )
            except InferenceServerException as exc:
                status = str(exc.status())
                last = f"{status}: {exc.message()}"
                if status == TIMED_OUT:
                    log.warning("inference_timeout", url=self.url, model=model, timeout_s=self.timeout_s)
                    raise InferenceUnavailable(
                        f"the inference server at {self.url} did not answer {model} within "
                        f"models.triton_timeout_s={self.timeout_s:g} s ({last}); it is overloaded or too slow "
                        "for this timeout"
                    ) from exc
                if status not in RETRYABLE:
                    raise InferenceError(f"Triton at {self.url} refused {model}: {last}") from exc
            else:
                self.set_state("ready")
                return {name: result.as_numpy(name) for name in outputs}
            if time.monotonic() >= deadline:
                self.set_state("unavailable", model=model, error=last)
                raise InferenceUnavailable(
                    f"the inference server at {self.url} did not answer {model} within "
                    f"models.triton_deadline_s={self.deadline_s:g} s ({attempt} attempts; last: {last}); "
                    "check that `inspectd serve` runs there"
                )
            self.set_state("reconnecting", model=model, error=last)
            fresh = True
            time.sleep(min(0.5 * attempt, 2.0, max(0.0, deadline - time.monotonic())))

    def info(self) -> dict[str, Any]:
        """The server's description of its networks (model ids, sizes), fetched once per connection."""
        with self._lock:
            cached, stale = self._info, self._stale
        if cached is not None and not stale:
            return cached
        out = self.infer(protocol.INFO, {"request": np.zeros(1, np.int32)}, ["info"])
        info = json.loads(bytes(out["info"].reshape(-1)[0]).decode("utf-8"))
        with self._lock:
            self._info, self._stale = info, False
        return info

    def last_info(self) -> dict[str, Any] | None:
        """The latest description read, even if the server has gone away since (never waits)."""
        with self._lock:
            return self._info

    def ready(self) -> bool:
        """Whether the server's networks are loaded: its description model, loaded last, is ready (never raises)."""
        from tritonclient.utils import InferenceServerException

        try:
            return bool(self._client().is_model_ready(protocol.INFO, client_timeout=min(self.timeout_s, 2.0)))
        except InferenceServerException:
            self._client(fresh=True)
            return False

    def wait_ready(self, timeout_s: float) -> bool:
        """Poll readiness for up to ``timeout_s``; True once the server answers."""
        end = time.monotonic() + timeout_s
        while True:
            if self.ready():
                self.set_state("ready")
                return True
            if time.monotonic() >= end:
                return False
            time.sleep(0.5)

    def start_probe(self, interval_s: float = 1.0) -> None:
        """Check readiness in the background, so state and status show an outage and its end promptly."""

        def probe() -> None:
            while not self._stop.wait(interval_s):
                if self.ready():
                    if self.state != "ready":
                        self.set_state("ready")
                elif self.state == "ready":
                    self.set_state("reconnecting")

        self._prober = threading.Thread(target=probe, name="triton-probe", daemon=True)
        self._prober.start()

    def close(self) -> None:
        """Stop the probe."""
        self._stop.set()
        if self._prober is not None:
            self._prober.join(timeout=5.0)


def _chunks(n: int, size: int) -> list[slice]:
    return [slice(lo, min(n, lo + size)) for lo in range(0, n, max(1, size))]


class _Remote:
    """A served network: its id and random-weights flag come from the server's description."""

    section = ""

    def __init__(self, conn: TritonConnection) -> None:
        self.conn = conn

    def _meta(self) -> dict[str, Any]:
        info = self.conn.info()
        if self.section not in info:
            raise ConfigError(
                f"the inference server at {self.conn.url} does not serve {self.section!r} (it serves "
                f"{', '.join(info.get('served', []))}); add it to serve.models there"
            )
        return info[self.section]

    @property
    def model_id(self) -> str:
        return str(self._meta()["model_id"])

    @property
    def random(self) -> bool:
        return bool(self._meta().get("random", False))

    def _batched(
        self, model: str, inputs: dict[str, np.ndarray], outputs: list[str]
    ) -> dict[str, np.ndarray]:
        """One request per ``max_batch_size`` rows, outputs concatenated."""
        n = len(next(iter(inputs.values())))
        step = int(self.conn.info().get("max_batch_size", n or 1))
        parts = [
            self.conn.infer(model, {k: v[s] for k, v in inputs.items()}, outputs) for s in _chunks(n, step)
        ]
        return {k: np.concatenate([p[k] for p in parts], axis=0) for k in outputs}


class RemoteIsNet(_Remote):
    """IS-Net on the server: frames are resized here, probabilities resized back here."""

    section = "isnet"

    @property
    def input_size(self) -> int:
        return int(self._meta()["input_size"])

    def _resize(self, image: np.ndarray) -> np.ndarray:
        return network_input(check_image(image), self.input_size)

    def predict(self, image: np.ndarray) -> np.ndarray:
        """Foreground probability (H, W) float32 in [0, 1] for an RGB uint8 (H, W, 3) frame."""
        return self.predict_batch([image])[0]

    def predict_batch(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """predict() for several frames in one request."""
        if not images:
            return []
        batch = np.stack([self._resize(im) for im in images])
        probs = self._batched(protocol.ISNET, {"image": batch}, ["prob"])["prob"]
        return [restore_size(p, im.shape[:2]) for p, im in zip(probs, images, strict=True)]


class RemoteTextEncoder(_Remote):
    """CLIPSeg's (or the separate CLIP's) text features and logit scale, from the server."""

    def __init__(self, conn: TritonConnection, section: str, model: str) -> None:
        super().__init__(conn)
        self.section = section
        self._model = model

    @property
    def logit_scale(self) -> float:
        return float(self._meta()["logit_scale"])

    @property
    def input_size(self) -> int:
        return int(self.conn.info()["clipseg"]["input_size"])

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """(T, D) projected text features, float32 on cpu."""
        if not texts:
            raise ValueError("no prompts to encode")
        column = np.array([t.encode("utf-8") for t in texts], dtype=np.object_).reshape(-1, 1)
        out = self._batched(self._model, {"text": column}, ["features"])["features"]
        return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32))


class RemoteTilePass:
    """The tile pass on the server: each tile travels with its prompt embeddings (one request per prompt set)."""

    def __init__(self, conn: TritonConnection, step: int) -> None:
        self.conn = conn
        self.step = step

    def run(
        self, tiles: np.ndarray, conds: list[torch.Tensor], groups: np.ndarray
    ) -> tuple[np.ndarray, torch.Tensor]:
        """See inspectd.models.tilepass.TilePass."""
        groups = np.asarray(groups, dtype=np.int64)
        maps = np.zeros((len(tiles), tiles.shape[1], tiles.shape[2]), np.float32)
        embeds: np.ndarray | None = None
        for g in np.unique(groups):
            sel = np.flatnonzero(groups == g)
            cond = conds[int(g)].float().numpy()
            for part in _chunks(len(sel), self.step):
                rows = sel[part]
                out = self.conn.infer(
                    protocol.TILES,
                    {
                        "tiles": np.ascontiguousarray(tiles[rows]),
                        "cond": np.repeat(cond[None], len(rows), axis=0),
                    },
                    ["map", "embed"],
                )
                maps[rows] = out["map"]
                if embeds is None:
                    embeds = np.zeros((len(tiles), out["embed"].shape[1]), np.float32)
                embeds[rows] = out["embed"]
        return maps, torch.from_numpy(embeds if embeds is not None else np.zeros((0, 0), np.float32))


class RemoteSam(_Remote):
    """SAM's automatic masks, computed on the server for one crop at a time."""

    section = "sam"

    def masks(self, image: np.ndarray) -> list[np.ndarray]:
        """SAM's automatic masks of an RGB uint8 (H, W, 3) crop, as bool (H, W) arrays."""
        out = self.conn.infer(protocol.SAM, {"image": np.ascontiguousarray(image)}, ["masks"])["masks"]
        return [m.astype(bool) for m in out]


class RemoteBackbone(_Remote):
    """The reference-mode backbone on the server: tiles go over as they are cut, features come back; the
    nearest-neighbour search against the camera's bank stays on this machine (``device`` is the CPU)."""

    section = "backbone"
    device = torch.device("cpu")

    @property
    def stages(self) -> tuple[int, ...]:
        return tuple(self._meta()["stages"])

    @property
    def layers(self) -> tuple[int, ...]:
        return tuple(self._meta()["layers"])

    @property
    def stride(self) -> int:
        return int(self._meta()["stride"])

    @property
    def channels(self) -> int:
        return int(self._meta()["channels"])

    def features(self, images: np.ndarray) -> torch.Tensor:
        """uint8 RGB (N, H, W, 3) tiles -> (N, C, ceil(H/stride), ceil(W/stride)) float32, as the local one."""
        out = self._batched(protocol.BACKBONE, {"image": np.ascontiguousarray(images)}, ["features"])
        return torch.from_numpy(out["features"])


class TritonStore(ModelStore):
    """A ModelStore that loads no network: every one is a stand-in calling the Triton server."""

    remote = True

    def __init__(self, models: ModelsConfig, pipeline: PipelineConfig) -> None:
        super().__init__(models, pipeline)
        self.conn = TritonConnection(models.triton_url, models.triton_timeout_s, models.triton_deadline_s)
        self._remote: dict[str, Any] = {
            "isnet": RemoteIsNet(self.conn),
            "clipseg": RemoteTextEncoder(self.conn, "clipseg", protocol.CLIPSEG_TEXT),
            "clip": RemoteTextEncoder(self.conn, "clip", protocol.CLIP_TEXT),
            "sam": RemoteSam(self.conn),
            "backbone": RemoteBackbone(self.conn),
        }
        self._used: set[str] = set()

    @property
    def state(self) -> str:
        """Reachability of the server (connecting, ready, reconnecting, unavailable)."""
        return self.conn.state

    def _take(self, name: str) -> Any:
        self._used.add(name)
        return self._remote[name]

    def clipseg(self) -> Any:
        return self._take("clipseg")

    def clip(self) -> Any:
        return self._take("clip")

    def sam(self) -> Any:
        return self._take("sam")

    def isnet(self) -> Any:
        return self._take("isnet")

    def backbone(self) -> Any:
        return self._take("backbone")

    def tile_pass(self) -> RemoteTilePass:
        self._used.update({"clipseg", "clip"})
        return RemoteTilePass(self.conn, int(self.conn.info().get("max_batch_size", 64)))

    def describe(self) -> dict[str, str]:
        """Model ids as the server last reported them (a verdict never waits for the server to say)."""
        info = self.conn.last_info()
        if info is None and self.conn.state == "ready":
            try:
                info = self.conn.info()
            except InferenceUnavailable:
                info = None
        models = (info or {}).get("models", {})
        return {name: models[name] for name in sorted(self._used) if name in models}

    def warmup(self) -> None:
        """Nothing to warm here: the server warms its networks before it reports ready."""

    def connect(self, wait_s: float) -> bool:
        """Wait up to ``wait_s`` for the server and read its description; start the readiness probe."""
        ok = self.conn.wait_ready(wait_s)
        if not ok:
            self.conn.set_state("unavailable", error="no answer to readiness checks")
        else:
            try:
                info = self.conn.info()
                log.info("inference_server_ready", url=self.conn.url, models=info.get("models", {}))
            except InferenceUnavailable:
                ok = False
        self.conn.start_probe()
        return ok

    def close(self) -> None:
        """Stop the readiness probe."""
        self.conn.close()


def make_store(models: ModelsConfig, pipeline: PipelineConfig) -> ModelStore:
    """The store for ``models.backend``: local networks, or stand-ins for the Triton server's."""
    if models.backend == "triton":
        return TritonStore(models, pipeline)
    return ModelStore(models, pipeline)
