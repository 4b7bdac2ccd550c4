"""`[scheduler]`: device batches, CPU workers, queues and the drain at stop."""

from __future__ import annotations

from pydantic import Field

from inspectd.config.base import Section


class SchedulerConfig(Section):
    """How tiles from all in-flight frames are pooled into device batches."""

    max_batch_tiles: int = Field(16, ge=1, description="tiles per device batch, pooled over all cameras")
    max_wait_ms: float = Field(
        20.0, ge=0.0, description="longest a tile waits for a fuller batch before the batch runs anyway"
    )
    queue_frames: int = Field(8, ge=1, description="frames waiting per camera before overload handling")
    cpu_workers: int = Field(2, ge=1, description="threads for the CPU stages (tiling, fusion, verdicts)")
    drain_timeout_s: float = Field(
        20.0,
        gt=0,
        description="SIGTERM: time to read what the sources already received and finish frames; parts not "
        "finished by then are answered error/shutdown (keep under the unit's TimeoutStopSec)",
    )
    max_step_s: float = Field(
        300.0,
        gt=0,
        description="one device step (IS-Net, SAM, a tile batch) running longer than this counts as hung: the "
        "systemd watchdog stops being fed and inspectd is restarted; shorter slow steps keep it fed",
    )
