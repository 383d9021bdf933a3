"""Painting the background picture of one variant in one format."""

from __future__ import annotations

import io

from PIL import Image, UnidentifiedImageError
from prefect import task

from backends import registry
from backends.base import ImageRequest
from hyperlocal.errors import InvalidImage
from hyperlocal.models import GeneratedImage
from hyperlocal.settings import Settings
from tasks.caching import backend_step_policy
from tasks.log import step_logger


def check_picture(image: GeneratedImage, request: ImageRequest) -> None:
    """Raise ``InvalidImage`` unless ``image`` is a decodable PNG of the requested size."""
    try:
        with Image.open(io.BytesIO(image.png)) as picture:
            picture.verify()
            found_format, size = picture.format, picture.size
    # A bomb (a header claiming a giant picture) is not a picture either.
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise InvalidImage(
            f"the image backend returned bytes that are not a picture: {exc}"
        ) from None
    if found_format != "PNG":
        raise InvalidImage(f"the image backend returned {found_format}, not PNG")
    if size != (request.width, request.height):
        raise InvalidImage(
            f"the image backend returned {size[0]}x{size[1]}, "
            f"not the requested {request.width}x{request.height}"
        )


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
