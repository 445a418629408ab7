"""What the AppTest tests of the dashboard share: where the app is, running a script with no
exception, and reading metrics and text from it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from streamlit.testing.v1 import AppTest

from termdeposit.modeling import registry

PROJECT_ROOT = Path(__file__).resolve().parents[1]
#: The dashboard's home page; other pages are opened with ``at.switch_page("pages/...")``.
HOME = str(PROJECT_ROOT / "streamlit_app.py")


def run(at: AppTest) -> AppTest:
    """Run (or rerun) the script; fail the test on any exception the page raised."""
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metric(at: AppTest, label: str) -> str:
    """The value of the one metric with this label."""
    matches = [m.value for m in at.metric if m.label == label]
    assert len(matches) == 1, f"metric {label!r}: {[m.label for m in at.metric]}"
    return matches[0]


def text(at: AppTest) -> str:
    """All markdown, captions, infos and warnings of the page, one per line."""
    return "\n".join(str(m.value) for m in [*at.markdown, *at.caption, *at.info, *at.warning])


def save_copy(
    model: Any, pipeline: Any = None, models_dir: Path | None = None, **card: Any
) -> str:
    """Save a new model version: ``pipeline`` (default: ``model``'s own) with ``model``'s card
    and reference sample, the card's entries in ``card`` replaced; return the version."""
    identity = ("version", "created", "artifact", "artifact_sha256", "reference_sha256")
    fields = {k: v for k, v in model.card.items() if k not in identity} | card
    return registry.save_model(
        pipeline if pipeline is not None else model.pipeline,
        fields,
        model.reference(),
        models_dir=models_dir,
    )
