"""The extractor's per-video completion mark: its file suffix and format tag.

A light module on its own (the layout module pulls in the video decoder) so that the list
builders of :mod:`iefvad.data.lists` can recognise a tree the extractor wrote.
"""

from __future__ import annotations

MANIFEST_FORMAT = "iefvad-extract/1"
MANIFEST_SUFFIX = ".manifest.json"
