"""Anomaly scores for your own videos and for live streams (``infer.py``, whose command line is
:mod:`iefvad.cli.infer`).

- :mod:`~iefvad.inference.session`: a checkpoint's model and the encoders of its features;
- :mod:`~iefvad.inference.scorer`: the snippet scorer and its temporal contexts;
- :mod:`~iefvad.inference.offline`: scoring files (per-frame CSV, top segments JSON, plot);
- :mod:`~iefvad.inference.stream`: live streams (causal context, latency, alerts, logs);
- :mod:`~iefvad.inference.run`: one ``infer.py`` run from an :class:`InferConfig`.


A video (or a stream) is decoded frame by frame, cut into 16-frame snippets (the last partial
snippet padded by repeating its last frame, so every decoded frame gets a score), turned into
image and event features by the encoders the checkpoint was trained on, and scored by the
fusion model under a *temporal context*:

- ``chunk`` (offline default): consecutive, non-overlapping windows of ``window`` snippets
  (256, as ``test.py`` evaluates), each zero-padded to 256 and scored at once; a snippet sees
  the snippets before and after it in its window. With the default window the scores equal
  ``test.py``'s for the same features.
- ``causal`` (streams): each snippet is scored as soon as it arrives, with the ``window - 1``
  snippets before it (zero-padded to 256); it never sees the future. Scoring a file offline
  with ``causal`` gives exactly the scores the live stream gives for it.

Event maps are normalised per snippet or over groups of ``group_snippets`` snippets (the
reference normalises over 32 snippets = 512 frames), as the checkpoint's features were; a
stream uses groups of 1 unless told otherwise (less latency, different features for a
group-normalised model: see ``docs/inference.md``).

Memory is bounded for any video length: frames live only in one group buffer, features only
in the context window; per-snippet scores (three floats per 16 frames) are kept for the JSON
and the plot.
"""
