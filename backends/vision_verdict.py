"""The questions a vision model answers about a picture, and how its answer becomes a QCReport.

The model gets fixed yes/no questions rather than a free-form critique: small
vision models answer narrow questions far more reliably, and each answer maps to
one check and one reason a person can read in the manifest. The score is the
model's overall judgement; it passes only above the run's minimum.
"""

from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict, Field

from hyperlocal.models import BackendIdentity, QCCheck, QCReport
from hyperlocal.prompts.llm_tokens import ChatMessage

#: Characters of the model's reason kept in the report.
REASON_CHARS = 200


class VisionVerdict(BaseModel):
    """The model's answers about one picture."""

    model_config = ConfigDict(frozen=True)

    has_text: bool = Field(
        description="Any letters, words, numbers, logos, signatures or watermarks anywhere."
    )
    shows_subject: bool = Field(description="The picture clearly shows the requested subject.")
    text_zone_calm: bool = Field(
        description="The text zone is calm: plain or softly blurred, nothing important in it."
    )
    has_defects: bool = Field(
        description="Distorted people, faces or hands, melted objects, glitches or artefacts."
    )
    score: int = Field(ge=1, le=10, description="Overall fitness as a flyer background, 1-10.")
    reason: str = Field(max_length=400, description="One short sentence explaining the score.")


_SYSTEM = (
    "You check pictures that will become the background of printed flyers. Look at the "
    "picture carefully and answer only with one JSON object, no prose, matching this "
    "schema:\n{schema}"
)

_QUESTION = (
    "Check this picture.\n"
    "1. has_text: does it contain any letters, words, numbers, logos, signatures or "
    "watermarks, anywhere, even small or blurred? Invented pseudo-letters count as text.\n"
    "2. shows_subject: does it clearly show {subject}?\n"
    "3. text_zone_calm: the flyer's text will be printed over {zone} of the picture. Is "
    "that area calm (plain, soft or blurred, without faces, busy detail or the main "
    "subject)?\n"
    "4. has_defects: are there distorted people, faces or hands, melted or impossible "
    "objects, or visible artefacts (glitches, seams, noise)?\n"
    "5. score: from 1 (unusable) to 10 (excellent), how good is it as a flyer background?\n"
    "6. reason: one short sentence explaining the score.\n"
    'Answer like {{"has_text": false, "shows_subject": true, "text_zone_calm": true, '
    '"has_defects": false, "score": 8, "reason": "..."}}.'
)


def verdict_messages(subject: str, zone_description: str) -> list[ChatMessage]:
    """Return the system and user messages asking the fixed questions (text only).

    The backend attaches the picture to the last (user) message. Never raises.
    """
    schema = json.dumps(VisionVerdict.model_json_schema(), separators=(",", ":"))
    # The subject comes from a model's art direction: quoted, one line, bounded.
    subject_text = " ".join(subject.split())[:300] or "the subject of the flyer"
    return [
        ChatMessage(role="system", content=_SYSTEM.format(schema=schema)),
        ChatMessage(
            role="user",
            content=_QUESTION.format(subject=json.dumps(subject_text), zone=zone_description),
        ),
    ]


def _flag(name: str, passed: bool, detail_ok: str, detail_bad: str) -> QCCheck:
    # A yes/no answer as a check: value 1 when passed, the limit being 1.
    return QCCheck(
        name=name,
        passed=passed,
        value=1.0 if passed else 0.0,
        limit=1.0,
        detail=detail_ok if passed else detail_bad,
    )


def to_report(
    verdict: VisionVerdict,
    backend_identity: BackendIdentity,
    min_score: float,
    heuristic_checks: list[QCCheck],
) -> QCReport:
    """Return the report for a model verdict: heuristic checks first, then one per question.

    Passed only when the picture has no text, shows the subject, has a calm text
    zone, has no defects and scores at least ``min_score``; every failure is one
    reason. Never raises (a ``VisionVerdict`` is already valid).
    """
    why = " ".join(verdict.reason.split())[:REASON_CHARS]
    checks = [
        *heuristic_checks,
        _flag(
            "model_no_text",
            not verdict.has_text,
            "the model sees no lettering",
            "the model sees text, letters, a logo or a watermark in the picture",
        ),
        _flag(
            "model_subject",
            verdict.shows_subject,
            "the model sees the subject",
            "the model does not see the subject the copy promises",
        ),
        _flag(
            "model_zone_calm",
            verdict.text_zone_calm,
            "the model finds the text zone calm",
            "the model finds the text zone busy",
        ),
        _flag(
            "model_no_defects",
            not verdict.has_defects,
            "the model sees no defects",
            "the model sees defects: distorted people or hands, or artefacts",
        ),
        QCCheck(
            name="model_score",
            passed=verdict.score >= min_score,
            value=float(verdict.score),
            limit=float(min_score),
            detail=f"the model scores it {verdict.score}/10" + (f": {why}" if why else ""),
        ),
    ]
    reasons = [check.detail for check in checks if not check.passed]
    if verdict.score < min_score:
        reasons[-1] = f"score {verdict.score} is below the minimum {min_score:g}" + (
            f": {why}" if why else ""
        )
    return QCReport(
        passed=all(check.passed for check in checks),
        score=float(verdict.score),
        checks=checks,
        reasons=reasons,
        backend=backend_identity,
    )
