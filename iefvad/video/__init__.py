"""From video files to frames: decoding, the resize, the frame-count rule, the ten crops and the
synthetic event maps of snippets."""
