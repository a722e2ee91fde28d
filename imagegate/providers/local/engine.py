"""The worker thread that runs a local pipeline, one batch at a time, off the event loop.

Each batch is one pipeline call with a pipeline of its own (shared weights, fresh scheduler)
and one CPU ``torch.Generator`` per image, seeded from its job: an image depends only on its
prompt, seed and shape, never on what it was batched with, and CPU generators give the same
starting noise on every device. A step callback reports progress, sends streaming previews
decoded from the intermediate latents, and interrupts the run once every job in it is gone.

Usage::

    engine = Engine(model, max_images=4, window_s=0.02)
    engine.submit(job)          # events arrive on job.sink.queue
    engine.close()              # from a thread: joins the worker
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

from imagegate.providers.local.batching import Batcher, Done, Failed, Job, Partial
from imagegate.providers.local.loader import LocalModel

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BatchRecord:
    """What one pipeline call did (kept for inspection: tests, debugging)."""

    requests: int
    images: int
    steps: int
    steps_run: int
    interrupted: bool


class Engine:
    def __init__(self, model: LocalModel, *, max_images: int, window_s: float, name: str = "local") -> None:
        self.model = model
        self.batcher = Batcher(max_images, window_s)
        self.history: deque[BatchRecord] = deque(maxlen=256)
        self._thread = threading.Thread(target=self._work, name=f"imagegate-diffusers-{name}", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> None:
        self.batcher.put(job)

    def close(self, timeout_s: float = 60.0) -> None:
        for job in self.batcher.close():
            job.sink.post(Failed(RuntimeError("the local model is shutting down")))
        self._thread.join(timeout_s)

    def _work(self) -> None:
        while (batch := self.batcher.take()) is not None:
            live = [job for job in batch if not job.cancelled.is_set()]
            if live:
                self._run(live)

    def _run(self, jobs: list[Job]) -> None:
        key = jobs[0].key
        watcher = StepWatcher(self.model, jobs)
        try:
            pipe = self.model.call_pipeline(edit=key.edit_id is not None)
            images = pipe(**self._arguments(jobs, watcher)).images
        except Exception as exc:
            logger.exception("local model run failed")
            for job in jobs:
                job.sink.post(Failed(exc))
            return
        finally:
            self.history.append(
                BatchRecord(
                    requests=len(jobs),
                    images=sum(len(job.seeds) for job in jobs),
                    steps=key.steps,
                    steps_run=max(job.steps_run for job in jobs),
                    interrupted=watcher.interrupted,
                )
            )
        start = 0
        for job in jobs:
            count = len(job.seeds)
            if not job.cancelled.is_set():
                job.sink.post(Done(list(images[start : start + count])))
            start += count

    def _arguments(self, jobs: list[Job], watcher: StepWatcher) -> dict[str, Any]:
        import torch

        key = jobs[0].key
        arguments: dict[str, Any] = {
            "prompt": [job.prompt for job in jobs for _ in job.seeds],
            "width": key.width,
            "height": key.height,
            "num_inference_steps": key.steps,
            "guidance_scale": key.guidance_scale,
            "generator": [torch.Generator("cpu").manual_seed(seed) for job in jobs for seed in job.seeds],
            "output_type": "pil",
            "callback_on_step_end": watcher,
            "callback_on_step_end_tensor_inputs": ["latents"],
        }
        if key.edit_id is not None:
            job = jobs[0]
            arguments["image"] = [job.init_image] * len(job.seeds)
            arguments["strength"] = job.strength
        return arguments


class StepWatcher:
    """The pipeline's ``callback_on_step_end``: progress, previews and cancellation."""

    def __init__(self, model: LocalModel, jobs: list[Job]) -> None:
        self.model = model
        self.jobs = jobs
        self.interrupted = False
        # Each job's first row in the batch: its preview shows its first image.
        self.rows: list[int] = []
        row = 0
        for job in jobs:
            self.rows.append(row)
            row += len(job.seeds)

    def __call__(self, pipe: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        total = int(getattr(pipe, "_num_timesteps", 0) or self.jobs[0].key.steps)
        live = False
        for job, row in zip(self.jobs, self.rows, strict=True):
            job.steps_run = step + 1
            if job.cancelled.is_set():
                continue
            live = True
            marks = job.partial_steps(total)
            if step in marks:
                latent = tensors["latents"][row : row + 1]
                preview = decode_latents(pipe, latent, job.key.width, job.key.height)
                if not job.sink.post(Partial(index=marks.index(step), image=preview)):
                    job.cancel()
        if not live:
            # Nobody wants the result: the pipeline skips its remaining steps.
            pipe._interrupt = True
            self.interrupted = True
        return tensors


def decode_latents(pipe: Any, latents: Any, width: int, height: int) -> Any:
    """One latent as a PIL image, through the model's own VAE (the true picture at this step).

    Mid-run latents still hold noise, so early previews look grainy; that is what the model
    has at that point, not a decoding shortcut.
    """
    if hasattr(pipe, "_unpack_latents"):  # FLUX-style packed latents
        latents = pipe._unpack_latents(latents, height, width, pipe.vae_scale_factor)
    config = pipe.vae.config
    latents = latents / config.scaling_factor + (getattr(config, "shift_factor", None) or 0.0)
    decoded = pipe.vae.decode(latents.to(pipe.vae.dtype), return_dict=False)[0]
    return pipe.image_processor.postprocess(decoded, output_type="pil")[0]
