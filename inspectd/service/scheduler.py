"""Pools the tiles of all in-flight frames of all cameras into device batches, and keeps every part answered.

One device worker owns the models (IS-Net, SAM, CLIPSeg/CLIP, reference backbone). CPU work (tiling, fusion,
verdicts, heatmap encoding, publishing) runs on a small thread pool so it never blocks the device. A tile batch
is flushed when it holds ``max_batch_tiles`` tiles or its oldest tile has waited ``max_wait_ms`` (as
DeepStream's batched push timeout and Triton's max queue delay do). Verdicts leave in capture order per camera.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from inspectd.config import SchedulerConfig
from inspectd.errors import ErrorReason, InspectdError
from inspectd.frame import Frame
from inspectd.logs import get_logger
from inspectd.pipeline.inspector import FramePlan, InspectionResult, Inspector

log = get_logger("scheduler")


def failure_reason(exc: Exception) -> ErrorReason:
    """The verdict reason for a fault: the one an inspectd error carries (the inference server out of reach,
    ...), else an internal fault."""
    return exc.reason if isinstance(exc, InspectdError) else ErrorReason.INTERNAL


Deliver = Callable[[InspectionResult], None]


BATCH_SIZES_KEPT = 4096


@dataclass(eq=False)
class _Ticket:
    """A frame's place in its camera's verdict order, and where it is in the pipeline."""

    camera: str
    order: int
    frame: Frame
    plan: FramePlan | None = None
    reference: tuple | None = None
    queued_tiles_at: float = 0.0


@dataclass
class SchedulerStats:
    """Counters the metrics endpoint and the benchmark read."""

    submitted: int = 0
    inspected: int = 0
    dropped: int = 0
    overloaded: int = 0
    batches: int = 0
    batch_tiles: int = 0
    batch_full: int = 0
    batch_sizes: deque[int] = field(default_factory=lambda: deque(maxlen=BATCH_SIZES_KEPT))
    shutdown: int = 0
    dropped_by_camera: Counter[str] = field(default_factory=Counter)


class _CameraQueue:
    """A camera's waiting frames plus its reorder buffer (verdicts are delivered in submission order)."""

    def __init__(self, limit: int) -> None:
        self.waiting: deque[_Ticket] = deque()
        self.limit = limit
        self.orders = itertools.count()
        self.next_out = 0
        self.finished: dict[int, InspectionResult] = {}
        self.out_lock = threading.Lock()


class Scheduler:
    """Frames in (``submit``), results out (``deliver``), with batching, bounded queues and overload handling."""

    def __init__(
        self,
        inspector: Inspector,
        cfg: SchedulerConfig,
        deliver: Deliver,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.inspector = inspector
        self.cfg = cfg
        self.deliver = deliver
        self.on_batch = on_batch
        self.stats = SchedulerStats()
        self._cameras: dict[str, _CameraQueue] = {}
        self._cv = threading.Condition()
        self._tiles: deque[_Ticket] = deque()
        self._tiling = 0
        self._inflight = 0
        self._active: set[_Ticket] = set()
        self.last_progress = time.monotonic()
        self._step_started: float | None = None
        self._draining = False
        self._max_inflight = max(2, 2 * cfg.queue_frames)
        self._round_robin: deque[str] = deque()
        self._running = False
        self._accepting = False
        self._pool = ThreadPoolExecutor(cfg.cpu_workers, thread_name_prefix="inspectd-cpu")
        self._device = threading.Thread(target=self._device_loop, name="inspectd-device", daemon=True)

    # ---- intake -----------------------------------------------------------------------------------------

    def _queue(self, camera: str) -> _CameraQueue:
        q = self._cameras.get(camera)
        if q is None:
            q = self._cameras[camera] = _CameraQueue(self.cfg.queue_frames)
            self._round_robin.append(camera)
        return q

    def submit(self, frame: Frame, live: bool, timeout: float | None = None) -> bool:
        """Queue a frame. Live cameras drop their oldest waiting frame when full; others wait for room.

        A dropped frame that carries a part id is answered with ``error``/``overloaded``, never silently lost.
        A frame without an image (the source could not read it, or a trigger got no frame) is answered at once,
        in its camera's order, without taking a queue slot. While draining (shutdown) nothing waits for room:
        a frame that finds its camera's queue full is answered with ``shutdown`` at once.
        Returns False when a non-live frame could not be queued within ``timeout`` (it is answered likewise).
        """
        if frame.image is None or frame.error is not None:
            with self._cv:
                ticket = _Ticket(frame.camera, next(self._queue(frame.camera).orders), frame)
                self.stats.submitted += 1
            self._complete(ticket, self.inspector.start(frame).done)
            return True
        victim: _Ticket | None = None
        with self._cv:
            q = self._queue(frame.camera)
            if not self._accepting or (self._draining and len(q.waiting) >= q.limit):
                # shutting down: only what fits the queue still gets a chance; the rest is answered now
                victim = _Ticket(frame.camera, next(q.orders), frame)
                victim_reason = ErrorReason.SHUTDOWN
            else:
                self.stats.submitted += 1
                if len(q.waiting) >= q.limit:
                    if live:
                        victim = q.waiting.popleft()
                        victim_reason = ErrorReason.OVERLOADED
                    else:
                        deadline = None if timeout is None else time.monotonic() + timeout
                        while len(q.waiting) >= q.limit and self._accepting and not self._draining:
                            left = None if deadline is None else deadline - time.monotonic()
                            if left is not None and left <= 0:
                                break
                            self._cv.wait(left)
                        if len(q.waiting) >= q.limit or not self._accepting:
                            victim = _Ticket(frame.camera, next(q.orders), frame)
                            closing = self._draining or not self._accepting
                            victim_reason = ErrorReason.SHUTDOWN if closing else ErrorReason.OVERLOADED
                if victim is None or victim.frame is not frame:
                    q.waiting.append(_Ticket(frame.camera, next(q.orders), frame))
                self._cv.notify_all()
        if victim is not None:
            self._shed(victim, victim_reason)
        return victim is None or victim.frame is not frame

    def _shed(self, ticket: _Ticket, reason: ErrorReason) -> None:
        """Answer a frame that will not be inspected: an error verdict if it names a part, else a count."""
        if ticket.frame.part_id is None and reason == ErrorReason.OVERLOADED:
            self.stats.dropped += 1
            self.stats.dropped_by_camera[ticket.camera] += 1
            log.debug("frame_dropped", camera=ticket.camera, seq=ticket.frame.seq, reason=reason)
            self._complete(ticket, None)
            return
        if reason == ErrorReason.SHUTDOWN:
            self.stats.shutdown += 1
        else:
            self.stats.overloaded += 1
        log.warning(
            "frame_not_inspected",
            camera=ticket.camera,
            seq=ticket.frame.seq,
            part_id=ticket.frame.part_id,
            reason=reason,
        )
        plan = FramePlan(frame=ticket.frame, camera=self.inspector.camera_config(ticket.camera))
        detail = (
            "the inspection queue was full; the line is sending parts faster than this machine inspects them"
            if reason == ErrorReason.OVERLOADED
            else "the daemon was shutting down"
        )
        self._complete(ticket, self.inspector.fail(plan, reason, detail))

    # ---- lifecycle -----------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the device worker."""
        self._running = True
        self._accepting = True
        self._device.start()

    def progressing(self, now: float, stall_s: float) -> bool:
        """Whether work advances: a step finished within ``stall_s``, or one is running and not yet longer
        than ``scheduler.max_step_s`` (a slow but healthy frame keeps the watchdog fed)."""
        started = self._step_started
        if started is not None and now - started < self.cfg.max_step_s:
            return True
        return now - self.last_progress < stall_s

    def waiting(self, camera: str) -> int:
        """Frames of one camera waiting for the device (not yet in flight)."""
        with self._cv:
            q = self._cameras.get(camera)
            return len(q.waiting) if q is not None else 0

    def pending(self) -> int:
        """Frames submitted and not yet answered."""
        with self._cv:
            return sum(len(q.waiting) for q in self._cameras.values()) + self._inflight

    def begin_drain(self) -> None:
        """Shutdown has begun: sources hand over what they already received; none of it waits for room."""
        with self._cv:
            self._draining = True
            self._cv.notify_all()

    def stop(self, drain_timeout: float) -> bool:
        """Stop accepting, finish frames within the timeout, answer the rest (in flight too) with ``shutdown``.

        True when every frame taken in got its own result (none had to be answered with ``shutdown``).
        """
        with self._cv:
            self._accepting = False
            self._draining = True
            self._cv.notify_all()
        deadline = time.monotonic() + drain_timeout
        while self.pending() and time.monotonic() < deadline:
            time.sleep(0.02)
        with self._cv:
            self._running = False
            leftovers = [t for q in self._cameras.values() for t in q.waiting]
            leftovers += sorted(self._active, key=lambda t: t.order)
            self._active.clear()
            self._inflight = 0
            for q in self._cameras.values():
                q.waiting.clear()
            self._cv.notify_all()
        for t in leftovers:
            self._shed(t, ErrorReason.SHUTDOWN)
        self._device.join(timeout=1.0 if leftovers else 5.0)
        self._pool.shutdown(wait=not leftovers, cancel_futures=bool(leftovers))
        return self.stats.shutdown == 0

    # ---- device worker --------------------------------------------------------------------------------------

    def _next_waiting(self) -> _Ticket | None:
        for _ in range(len(self._round_robin)):
            cam = self._round_robin[0]
            self._round_robin.rotate(-1)
            q = self._cameras[cam]
            if q.waiting:
                return q.waiting.popleft()
        return None

    def _take_batch(self, now: float) -> list[_Ticket] | None:
        """The frames whose tiles make the next batch, if it is full or its oldest tile waited long enough."""
        if not self._tiles:
            return None
        queued = sum(len(t.plan.tiles) for t in self._tiles)
        oldest_wait = (now - self._tiles[0].queued_tiles_at) * 1000.0
        if queued < self.cfg.max_batch_tiles and oldest_wait < self.cfg.max_wait_ms and self._accepting:
            more_coming = self._tiling or any(q.waiting for q in self._cameras.values())
            if more_coming:
                return None
        batch, n = [], 0
        while self._tiles and (not batch or n + len(self._tiles[0].plan.tiles) <= self.cfg.max_batch_tiles):
            t = self._tiles.popleft()
            batch.append(t)
            n += len(t.plan.tiles)
        return batch

    def _device_loop(self) -> None:
        while True:
            with self._cv:
                while True:
                    if not self._running and not self._tiles and not self._tiling:
                        return
                    now = time.monotonic()
                    batch = self._take_batch(now)
                    if batch:
                        break
                    ticket = self._next_waiting() if self._inflight < self._max_inflight else None
                    if ticket is not None:
                        self._inflight += 1
                        self._active.add(ticket)
                        self._cv.notify_all()
                        break
                    wait = None
                    if self._tiles:
                        wait = max(
                            0.0, self.cfg.max_wait_ms / 1000.0 - (now - self._tiles[0].queued_tiles_at)
                        )
                    self._cv.wait(0.05 if wait is None else max(wait, 0.001))
            self._step_started = time.monotonic()
            try:
                if batch:
                    self._run_batch(batch)
                else:
                    self._run_start(ticket)
            finally:
                self._step_started = None
                self.last_progress = time.monotonic()

    def _spawn(self, fn: Callable[..., None], *args: object) -> None:
        try:
            self._pool.submit(fn, *args)
        except RuntimeError:  # the pool is shut down: this frame was already answered with ``shutdown``
            log.debug("late_work_discarded", fn=fn.__name__)

    def _run_start(self, ticket: _Ticket) -> None:
        """Device part of a new frame: IS-Net, SAM on a cache miss, reference scoring; then tiling on the CPU."""
        insp = self.inspector
        try:
            plan = insp.start(ticket.frame)
            ticket.plan = plan
            if insp.needs_complexity(plan):
                insp.measure_complexity(plan)
            ticket.reference = insp.score_reference(plan)
        except Exception as exc:  # a fault in one frame must not stop the line
            if isinstance(exc, InspectdError):  # explained by its message: no traceback per frame
                log.error("frame_failed", camera=ticket.camera, seq=ticket.frame.seq, error=str(exc))
            else:
                log.exception("frame_failed", camera=ticket.camera, seq=ticket.frame.seq)
            plan = ticket.plan or FramePlan(frame=ticket.frame, camera=insp.camera_config(ticket.camera))
            ticket.plan = plan
            insp.fail(plan, failure_reason(exc), f"{type(exc).__name__}: {exc}")
        if not insp.needs_tiles(plan):
            self._spawn(self._finish, ticket, None)
        else:
            with self._cv:
                self._tiling += 1
            self._spawn(self._tile, ticket)

    def _tile(self, ticket: _Ticket) -> None:
        try:
            self.inspector.make_tiles(ticket.plan)
        except Exception as exc:
            log.exception("tiling_failed", camera=ticket.camera, seq=ticket.frame.seq)
            self.inspector.fail(ticket.plan, ErrorReason.INTERNAL, f"{type(exc).__name__}: {exc}")
        with self._cv:
            self._tiling -= 1
            if ticket.plan.done is None:
                ticket.queued_tiles_at = time.monotonic()
                self._tiles.append(ticket)
            self._cv.notify_all()
        if ticket.plan.done is not None:
            self._finish(ticket, None)

    def _run_batch(self, batch: list[_Ticket]) -> None:
        n = sum(len(t.plan.tiles) for t in batch)
        self.stats.batches += 1
        self.stats.batch_tiles += n
        self.stats.batch_sizes.append(n)
        if n >= self.cfg.max_batch_tiles:
            self.stats.batch_full += 1
        if self.on_batch is not None:
            self.on_batch(n)
        try:
            outputs = self.inspector.score_tiles([t.plan for t in batch], self.cfg.max_batch_tiles)
        except Exception as exc:
            if isinstance(exc, InspectdError):
                log.error("batch_failed", tiles=n, frames=len(batch), error=str(exc))
            else:
                log.exception("batch_failed", tiles=n, frames=len(batch))
            for t in batch:
                self.inspector.fail(t.plan, failure_reason(exc), f"{type(exc).__name__}: {exc}")
            outputs = [None] * len(batch)
        for t, out in zip(batch, outputs, strict=True):
            self._spawn(self._finish, t, out)

    # ---- cpu: fusion, verdict, delivery in order -----------------------------------------------------------

    def _finish(self, ticket: _Ticket, outputs) -> None:
        try:
            result = self.inspector.finish(ticket.plan, outputs, ticket.reference)
        except Exception as exc:
            log.exception("fusion_failed", camera=ticket.camera, seq=ticket.frame.seq)
            result = self.inspector.fail(ticket.plan, ErrorReason.INTERNAL, f"{type(exc).__name__}: {exc}")
        with self._cv:
            if ticket in self._active:
                self._active.discard(ticket)
                self._inflight -= 1
            self.stats.inspected += 1
            self.last_progress = time.monotonic()
            self._cv.notify_all()
        self._complete(ticket, result)

    def _complete(self, ticket: _Ticket, result: InspectionResult | None) -> None:
        """Deliver results of a camera strictly in submission order; a dropped frame just frees its slot."""
        q = self._cameras[ticket.camera]
        with q.out_lock:
            if ticket.order < q.next_out or ticket.order in q.finished:
                return  # answered already (with ``shutdown`` when the drain time ran out)
            q.finished[ticket.order] = result
            while q.next_out in q.finished:
                ready = q.finished.pop(q.next_out)
                q.next_out += 1
                if ready is not None:
                    try:
                        self.deliver(ready)
                    except Exception:
                        log.exception("delivery_failed", camera=ticket.camera, seq=ready.verdict.seq)
