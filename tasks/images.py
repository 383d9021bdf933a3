"""Painting the background picture of one variant in one format."""

from __future__ import annotations

from prefect import task

from backends import registry
from backends.base import ImageRequest
from hyperlocal.models import GeneratedImage
from hyperlocal.pictures import check_png
from hyperlocal.settings import Settings
from tasks.caching import backend_step_policy
from tasks.log import step_logger


def check_picture(image: GeneratedImage, request: ImageRequest) -> None:
    """Raise ``InvalidImage`` unless ``image`` is a decodable PNG of the requested size."""
    check_png(image.png, (request.width, request.height), "the image backend returned")


@task(name="generate_image", cache_policy=backend_step_policy("image"), persist_result=True)
def generate_image(request: ImageRequest, settings: Settings) -> GeneratedImage:
    """Return one background picture with its seed, checked to be a PNG of the right size.

    Raises the backend's faults (``PassingFault`` is retried by the task) or
    ``InvalidImage``.
    """
    backend = registry.image_backend(settings)
    image = backend.generate(request)
    check_picture(image, request)
    step_logger().info(
        "painted %dx%d, seed %d, attempt %d, with %s",
        image.width,
        image.height,
        image.seed,
        image.attempt,
        backend.identity.label,
    )
    return image
