"""Benchmark: the diffusers image backend against a bare StableDiffusionXLPipeline call.

    python -m bench.diffusers_overhead [--images 12] [--size 64] [--steps 4] [--model DIR]
                                       [--device auto] [--write]

Paints N pictures, side by side in one run and with identical settings (model,
scheduler, size, steps, guidance, seeds, the same compel embeddings), through:

- the bare pipeline: ``pipe(prompt_embeds=..., generator=..., output_type="pil")``
  and a PNG encode, in a loop;
- ``DiffusersImageBackend.generate`` one picture at a time (``max_batch`` 1);
- the backend with ``max_batch`` 4, asked from 4 threads at once (the variants
  of a brief), against the same 4 pictures one by one.

Rounds alternate so warm-up and machine noise fall on both sides. The ratio
backend / bare is the backend's overhead (goal: at most 1.05). Without
``--model`` a tiny random-weight SDXL pipeline is built (needs the test extras);
with ``--model`` any local SDXL folder is used (see RESULTS.md for GPU runs).
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from backends import registry
from backends.base import ImageRequest
from backends.diffusers_image import DiffusersImageBackend
from bench.results import record
from hyperlocal.layout.designs import place_design
from hyperlocal.layout.formats import FORMATS
from hyperlocal.models import ImagePrompt, PromptPhrase
from hyperlocal.prompts.fitting import fit_image_prompt
from hyperlocal.settings import load_settings

ZONE = place_design(FORMATS["square"], "frosted").text_zone
SUBJECTS = ("sourdough loaves on a wooden table", "a lantern-lit night market", "autumn leaves")


def _backend(model: str, device: str, steps: int, max_batch: int) -> DiffusersImageBackend:
    settings = load_settings(
        image__kind="diffusers",
        image__model=model,
        image__device=device,
        image__steps=steps,
        image__cfg_scale=5.0,
        image__sampler="euler",
        image__max_batch=max_batch,
    )
    backend = registry.image_backend(settings)
    assert isinstance(backend, DiffusersImageBackend)
    return backend


def _requests(backend: DiffusersImageBackend, count: int, size: int, steps: int) -> list[Any]:
    requests = []
    for n in range(count):
        art = ImagePrompt(
            phrases=[
                PromptPhrase(text=SUBJECTS[n % len(SUBJECTS)], role="subject", priority=100),
                PromptPhrase(text="soft film photograph", role="style", priority=60),
            ],
            negative=[PromptPhrase(text="text, letters", role="quality", priority=90)],
        )
        fitted = fit_image_prompt(
            art,
            syntax=backend.prompt_syntax,
            counters=backend.token_counters(),
            zone=ZONE.describe(),
        )
        requests.append(
            ImageRequest(
                prompt=fitted,
                width=size,
                height=size,
                seed=1000 + n,
                attempt=1,
                steps=steps,
                cfg_scale=5.0,
                palette=["#1F3A5F"],
                text_zone=ZONE,
            )
        )
    return requests


def _bare(backend: DiffusersImageBackend, requests: list[ImageRequest]) -> float:
    """Paint with the pipeline directly (the same loaded pipe and embeddings); return seconds."""
    import torch

    loaded = backend.loaded()
    started = time.perf_counter()
    for request in requests:
        arguments = loaded.encoder.arguments([request.prompt])
        with torch.inference_mode():
            picture = loaded.pipe(
                **arguments,
                num_inference_steps=request.steps,
                guidance_scale=request.cfg_scale,
                width=request.width,
                height=request.height,
                generator=[torch.Generator("cpu").manual_seed(request.seed)],
                output_type="pil",
            ).images[0]
        picture.save(io.BytesIO(), format="PNG")
    return time.perf_counter() - started


def _ours(backend: DiffusersImageBackend, requests: list[ImageRequest]) -> float:
    started = time.perf_counter()
    for request in requests:
        backend.generate(request)
    return time.perf_counter() - started


def _threads(backend: DiffusersImageBackend, requests: list[ImageRequest]) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(requests)) as pool:
        list(pool.map(backend.generate, requests))
    return time.perf_counter() - started


def main() -> None:
    """Run the benchmark and print (and with --write, record) the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", help="a local SDXL folder (default: a tiny random one)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--write", action="store_true", help="record in bench/RESULTS.md")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as work:
        model = args.model
        if model is None:
            from tests.tiny_sdxl import build_tiny_sdxl

            model = str(build_tiny_sdxl(Path(work) / "tiny-sdxl"))
        single = _backend(model, args.device, args.steps, max_batch=1)
        batched = _backend(model, args.device, args.steps, max_batch=4)
        requests = _requests(single, args.images, args.size, args.steps)
        variants = requests[:4]
        _bare(single, requests[:2])  # warm-up: load, allocate, first-call costs
        _ours(single, requests[:2])
        _threads(batched, variants)
        bare, ours, one_by_one, together = [], [], [], []
        for _ in range(args.rounds):
            bare.append(_bare(single, requests))
            ours.append(_ours(single, requests))
            one_by_one.append(_ours(single, variants))
            together.append(_threads(batched, variants))
        device = single.device
        model_name = "tiny random-weight SDXL" if args.model is None else args.model

    n = args.images
    b, o = statistics.median(bare), statistics.median(ours)
    s4, t4 = statistics.median(one_by_one), statistics.median(together)
    lines = [
        f"{n} pictures {args.size}x{args.size}, {args.steps} steps, euler, guidance 5, "
        f"{model_name} on {device}; median of {args.rounds} alternating rounds",
        "",
        "| painter | s per picture | pictures/s |",
        "| --- | --- | --- |",
        f"| bare StableDiffusionXLPipeline call + PNG | {b / n:.4f} | {n / b:.2f} |",
        f"| DiffusersImageBackend.generate | {o / n:.4f} | {n / o:.2f} |",
        "",
        f"backend / bare: **{o / b:.3f}** (goal: at most 1.05)",
        "",
        "| 4 variants | s | pictures/s |",
        "| --- | --- | --- |",
        f"| one by one (max_batch 1) | {s4:.3f} | {4 / s4:.2f} |",
        f"| 4 threads, one batch (max_batch 4) | {t4:.3f} | {4 / t4:.2f} |",
        "",
        f"batched / one by one: {t4 / s4:.2f}; batch sizes seen: "
        f"{sorted(set(batched.batch_sizes))}",
    ]
    print("\n".join(lines))
    if args.write:
        record(
            "Diffusers backend overhead (`python -m bench.diffusers_overhead --write`)",
            [*lines, "", *GPU_NOTE],
        )


GPU_NOTE = [
    "On a GPU machine (CUDA, with the SDXL-Turbo and SDXL base folders downloaded):",
    "",
    "```",
    "pip install -e '.[diffusers,test]'",
    "python -m bench.diffusers_overhead --model ~/models/sdxl-turbo --size 512 --steps 4",
    "python -m bench.diffusers_overhead --model ~/models/sdxl-base-1.0 --size 1024 --steps 30",
    "```",
    "",
    "The figures above are the tiny model on this machine's CPU; no GPU was lent to the "
    "session that wrote them.",
]


if __name__ == "__main__":
    main()
