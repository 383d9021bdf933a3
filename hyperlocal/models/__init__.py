"""Domain models: what flows between the steps, validated at every boundary.

A ``Brief`` goes in (``brief``); each step turns one model into the next
(``steps``: ``FlyerCopy``, ``ImagePrompt``, ``FittedPrompt``, ``GeneratedImage``,
``QCReport``, ``RenderedFlyer``); ``RunManifest`` records the whole run
(``manifest``). Import them from here.
"""

from hyperlocal.models.brief import BrandKit, Brief
from hyperlocal.models.fields import HexColour, Tone
from hyperlocal.models.manifest import (
    AttemptRecord,
    FormatRecord,
    RunManifest,
    StepRecord,
    VariantRecord,
)
from hyperlocal.models.steps import (
    ArtDraft,
    BackendIdentity,
    ChunkSyntax,
    CopyDraft,
    DraftPhrase,
    EncoderFit,
    FittedPrompt,
    FlyerCopy,
    FlyerLayout,
    GeneratedImage,
    ImagePrompt,
    LongPrompts,
    PhraseRole,
    PromptPhrase,
    PromptSyntax,
    QCCheck,
    QCReport,
    RenderedFlyer,
    TextStyle,
    WeightSyntax,
    fact_problems,
    placed_facts,
)
from hyperlocal.models.work import CheckedPicture, DirectedArt, ModelWork, WrittenCopy

__all__ = [
    "ArtDraft",
    "AttemptRecord",
    "BackendIdentity",
    "BrandKit",
    "Brief",
    "CheckedPicture",
    "ChunkSyntax",
    "CopyDraft",
    "DirectedArt",
    "DraftPhrase",
    "EncoderFit",
    "FittedPrompt",
    "FlyerCopy",
    "FlyerLayout",
    "FormatRecord",
    "GeneratedImage",
    "HexColour",
    "ImagePrompt",
    "LongPrompts",
    "ModelWork",
    "PhraseRole",
    "PromptPhrase",
    "PromptSyntax",
    "QCCheck",
    "QCReport",
    "RenderedFlyer",
    "RunManifest",
    "StepRecord",
    "TextStyle",
    "Tone",
    "VariantRecord",
    "WeightSyntax",
    "WrittenCopy",
    "fact_problems",
    "placed_facts",
]
