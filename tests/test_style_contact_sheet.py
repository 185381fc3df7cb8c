"""The contact sheet's public-domain filter: only scikit-image's photos and the paintings may be committed."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("style_contact_sheet", REPO / "scripts" / "style_contact_sheet.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_public_domain_files_keep_scikit_image_photos_and_paintings_only(shared_data):
    style_dir = shared_data / "style"
    allowed = _script().public_domain_files(style_dir / "manifest.csv")
    assert "content/tubingen.jpg" not in allowed  # its licence is not stated
    assert {"content/astronaut.png", "content/chelsea_cat.png", "style/the_scream.jpg"} <= allowed
    # every name it keeps is a real file, so the pairs' paths match it
    assert all((style_dir / rel).is_file() for rel in allowed)
