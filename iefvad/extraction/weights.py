"""Where encoder weights come from when no file is passed: the caches, else a download.

Three ways, in this order (``iefvad.extraction.encoders.load_encoder`` takes the first that works):

1. a local file passed by flag (``--clip_ckpt``, ``--event_clip_ckpt``): not handled here;
2. the standard caches: the Hugging Face cache (``HF_HUB_CACHE``, default
   ``~/.cache/huggingface/hub``) and open_clip's ``~/.cache/clip`` for OpenAI's URL files;
3. a download into those caches, with a progress bar, verified by checksum (open_clip's
   SHA-256 in the URL of OpenAI's files; the Hub's SHA-256 of LFS files), written to a
   temporary name and moved into place only when complete, so a failed download leaves
   nothing behind.

Image towers come from open_clip's pretrained registry (``--clip_model ViT-L-14
--clip_pretrained openai`` by default, any registry tag, or ``--clip_model hf-hub:ORG/REPO``);
the event-CLIP tower from the Hugging Face repository ``Eavn/event-clip`` (``vitl.pt``, or
``vitb.pt`` for ViT-B models; ``--event_clip_repo/_file/_revision``). ``--offline`` or
``HF_HUB_OFFLINE=1`` never touches the network: only steps 1 and 2, and the error names the
file to place and where.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from iefvad.errors import UserInputError

log = logging.getLogger(__name__)

DEFAULT_PRETRAINED = "openai"
EVENT_CLIP_REPO = "Eavn/event-clip"
EVENT_CLIP_FILE_L = "vitl.pt"
EVENT_CLIP_FILE_B = "vitb.pt"
OPEN_CLIP_CONFIG = "open_clip_config.json"
OPEN_CLIP_WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
HF_PREFIX = "hf-hub:"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_TRUE = {"1", "on", "yes", "true"}


class EncoderError(UserInputError):
    """Weights are missing or cannot be turned into an encoder; the message says what to do."""


class WeightsUnavailable(EncoderError):
    """No weights passed, none cached, and none downloadable: the message says where to put
    the file or which flag passes it."""


class NotOnHub(WeightsUnavailable):
    """The repository has no such file (HTTP 404)."""


@dataclass(frozen=True)
class WeightsOptions:
    """How to find weights that were not passed as files, and how far to trust files."""

    pretrained: str = DEFAULT_PRETRAINED
    """open_clip pretrained tag of the image tower (``--clip_pretrained``)."""
    event_repo: str = EVENT_CLIP_REPO
    event_file: str | None = None
    """File in ``event_repo``; None: ``vitb.pt`` for ViT-B models, else ``vitl.pt``."""
    event_revision: str | None = None
    """Branch, tag or commit of ``event_repo``; None: ``main``."""
    offline: bool = False
    """Never download (also when ``HF_HUB_OFFLINE=1``)."""
    trust_file: bool = False
    """Unpickle weight files in full (``--trust_weights_file``): can run code from the file."""

    def is_offline(self) -> bool:
        """``offline``, or ``HF_HUB_OFFLINE`` set now or when huggingface_hub was imported."""
        if self.offline or os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE:
            return True
        try:
            from huggingface_hub import constants
        except ImportError:  # pragma: no cover - a dependency
            return False
        check = getattr(constants, "is_offline_mode", None)  # huggingface_hub >= 1.0
        return bool(check() if check is not None else constants.HF_HUB_OFFLINE)


@dataclass(frozen=True)
class Fetched:
    """A weights file found in a cache or downloaded, and what it is."""

    path: Path
    origin: dict[str, str]
    """Where it came from, for manifests and to fetch it again (``hub``: ``open_clip`` or
    ``huggingface``, with model/pretrained or repo/file/revision)."""
    layout: Literal["openai", "open_clip", "local-dir"]
    """How to build it: OpenAI layout read off the weights; ``open_clip.create_model(model,
    pretrained=path)``; or ``create_model('local-dir:<folder of path>')`` (hf-hub models)."""
    downloaded: bool = False
    places: list[str] = field(default_factory=list)
    """Where it was looked for."""


# ---------------------------------------------------------------------------- caches


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache in use now (``HF_HUB_CACHE``, ``HF_HOME``/hub, ...)."""
    env = os.environ.get("HF_HUB_CACHE")
    if env:
        return Path(env).expanduser()
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE).expanduser()


def clip_url_cache_dir() -> Path:
    """open_clip's cache of files downloaded by URL (OpenAI's ``ViT-L-14.pt``...)."""
    return Path(os.path.expanduser("~/.cache/clip"))


def _repo_folder(repo_id: str) -> Path:
    return hf_cache_dir() / ("models--" + repo_id.replace("/", "--"))


def _hf_cached(repo_id: str, filename: str, revision: str | None) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(
        repo_id, filename, cache_dir=str(hf_cache_dir()), revision=revision
    )
    if isinstance(found, str) and os.path.isfile(found):
        return Path(found)
    return None


def _commit_of(path: Path) -> str:
    """The commit of a file in the HF cache (``.../snapshots/<commit>/<file>``), or ``''``."""
    return path.parent.name if path.parent.parent.name == "snapshots" else ""


# ---------------------------------------------------------------------------- downloads


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _remove_partials(repo_id: str, since: float) -> None:
    """Delete the ``*.incomplete`` blobs a failed download of ``repo_id`` left since
    ``since`` (huggingface_hub < 1.0 kept them to resume)."""
    blobs = _repo_folder(repo_id) / "blobs"
    if not blobs.is_dir():
        return
    for p in blobs.glob("*.incomplete"):
        try:
            if p.stat().st_mtime >= since - 1:
                p.unlink()
        except OSError:
            pass


def _verify_hf_file(path: Path, repo_id: str, filename: str, flag: str) -> None:
    """Check a freshly downloaded LFS file against the Hub's SHA-256 (its blob name);
    on a mismatch remove it from the cache and raise."""
    blob = Path(os.path.realpath(path))
    if not _SHA256.match(blob.name):
        return  # a small git file (etag is a git hash) or a cache without symlinks
    got = _sha256(blob)
    if got == blob.name:
        return
    for p in (path, blob):
        try:
            p.unlink()
        except OSError:
            pass
    raise WeightsUnavailable(
        f"{repo_id}/{filename} downloaded, but its SHA-256 {got[:16]}... is not the Hub's "
        f"{blob.name[:16]}...: it was corrupted on the way. Nothing was kept in the cache. "
        f"Pass a local file with {flag} instead, or run again"
    )


def hf_fetch(
    repo_id: str,
    filename: str,
    revision: str | None,
    opts: WeightsOptions,
    flag: str,
    what: str,
) -> tuple[Path, bool]:
    """``filename`` of Hugging Face repository ``repo_id``: from the HF cache, else downloaded
    into it (progress bar, SHA-256 checked). Returns ``(path, downloaded)``.

    ``flag`` (e.g. ``--event_clip_ckpt PATH``) and ``what`` (e.g. ``event-CLIP weights``) go into
    the error messages. Offline, or when the download fails, raises
    :class:`WeightsUnavailable` naming the cache path and ``flag``; no partial file stays.
    """
    rev = revision or "main"
    cached = _hf_cached(repo_id, filename, revision)
    if cached is not None:
        return cached, False
    endpoint = (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")
    url = f"{endpoint}/{repo_id}/resolve/{rev}/{filename}"
    if opts.is_offline():
        raise WeightsUnavailable(
            f"no {what}: {repo_id}/{filename} (revision {rev}) is not in the Hugging Face cache "
            f"{_repo_folder(repo_id)}, and offline mode (--offline or HF_HUB_OFFLINE=1) forbids "
            f"downloading it. Either run `hf download {repo_id} {filename}"
            f"{'' if revision is None else ' --revision ' + revision}` on a machine with "
            f"network and copy {_repo_folder(repo_id).name} into {hf_cache_dir()} here "
            f"(HF_HUB_CACHE), or download {url} and pass it with {flag}, or run without "
            "--offline / HF_HUB_OFFLINE to download it"
        )
    from huggingface_hub import hf_hub_download
    from huggingface_hub.utils import (  # also where huggingface_hub < 0.24 has them
        EntryNotFoundError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    log.info("downloading %s %s from %s into %s", what, filename, url, hf_cache_dir())
    start = time.time()
    fix = f"Nothing was kept in the cache. Pass a local file with {flag} instead"
    try:
        path = Path(
            hf_hub_download(
                repo_id,
                filename,
                revision=revision,
                cache_dir=str(hf_cache_dir()),
                endpoint=endpoint,
            )
        )
    except RepositoryNotFoundError as e:
        _remove_partials(repo_id, start)
        raise WeightsUnavailable(
            f"downloading {what}: repository {repo_id} not found at {endpoint} (or private or "
            f"gated: log in with `hf auth login`). {fix}, or name another repository"
        ) from e
    except RevisionNotFoundError as e:
        _remove_partials(repo_id, start)
        raise WeightsUnavailable(
            f"downloading {what}: {repo_id} has no revision {rev!r}. {fix}, or pass another "
            "revision"
        ) from e
    except EntryNotFoundError as e:
        _remove_partials(repo_id, start)
        if isinstance(e, LocalEntryNotFoundError):
            raise WeightsUnavailable(
                f"downloading {what} {url} failed: cannot reach {endpoint} (no network? "
                f"{_first_line(e)}). {fix}, or place it in the cache {hf_cache_dir()}"
            ) from e
        raise NotOnHub(
            f"downloading {what}: {url} does not exist (404): {repo_id} has no file "
            f"{filename!r} at revision {rev}. {fix}, or name the right file"
        ) from e
    except Exception as e:  # noqa: BLE001 - network, HTTP and size errors of any kind
        _remove_partials(repo_id, start)
        raise WeightsUnavailable(
            f"downloading {what} {url} failed: {_first_line(e)}. {fix}, or run again"
        ) from e
    _verify_hf_file(path, repo_id, filename, flag)
    return path, True


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"


def expected_sha256(url: str) -> str:
    """open_clip's checksum of a URL (``''`` when it has none): the folder name of OpenAI's
    files (``.../models/<sha256>/ViT-L-14.pt``), or the suffix of mlfoundations' files."""
    parts = url.rstrip("/").split("/")
    if len(parts) >= 2 and _SHA256.match(parts[-2]):
        return parts[-2]
    if "mlfoundations" in url:
        tail = os.path.splitext(parts[-1])[0].split("-")[-1]
        if re.fullmatch(r"[0-9a-f]{8,64}", tail):
            return tail
    return ""


def url_fetch(url: str, flag: str, what: str, progress: bool = True) -> Path:
    """Download ``url`` into ``~/.cache/clip`` (open_clip's cache) through a temporary file
    moved into place once complete and checked against :func:`expected_sha256`."""
    from tqdm import tqdm

    cache = clip_url_cache_dir()
    target = cache / os.path.basename(url)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.{uuid.uuid4().hex[:8]}.part")
    want = expected_sha256(url)
    log.info("downloading %s %s into %s", what, url, target)
    fix = f"Nothing was kept in the cache. Pass a local file with {flag} instead"
    try:
        with urllib.request.urlopen(url, timeout=60) as src, open(tmp, "wb") as out:
            total = src.headers.get("Content-Length")
            total = int(total) if total and total.isdigit() else None
            h, got = hashlib.sha256(), 0
            with tqdm(
                total=total, unit="B", unit_scale=True, desc=target.name, disable=not progress
            ) as bar:
                while True:
                    try:
                        chunk = src.read(1 << 20)
                    except Exception as e:  # noqa: BLE001 - http.client.IncompleteRead...
                        raise OSError(f"connection broken after {got} bytes: {e!r}") from e
                    if not chunk:
                        break
                    out.write(chunk)
                    h.update(chunk)
                    got += len(chunk)
                    bar.update(len(chunk))
        if total is not None and got != total:
            raise OSError(f"truncated: received {got} of {total} bytes")
        if want and not h.hexdigest().startswith(want):
            raise OSError(
                f"SHA-256 {h.hexdigest()[:16]}... is not open_clip's checksum {want[:16]}..."
            )
        os.replace(tmp, target)
    except urllib.error.HTTPError as e:
        raise WeightsUnavailable(
            f"downloading {what} {url} failed: HTTP {e.code} {e.reason}. {fix}"
        ) from e
    except (OSError, ValueError) as e:
        raise WeightsUnavailable(
            f"downloading {what} {url} failed: {e}. {fix}, or run again"
        ) from e
    finally:
        tmp.unlink(missing_ok=True)
    return target


# ---------------------------------------------------------------------------- the towers


def fetch_clip(model: str, opts: WeightsOptions) -> Fetched:
    """The image CLIP weights of open_clip ``model``/``opts.pretrained`` (or of
    ``hf-hub:ORG/REPO``): from the caches, else downloaded (unless offline)."""
    flag = "--clip_ckpt PATH"
    if model.startswith(HF_PREFIX):
        return _fetch_hf_model(model[len(HF_PREFIX) :].strip("/"), opts)
    from open_clip.pretrained import get_pretrained_cfg, list_pretrained_tags_by_model

    tag = opts.pretrained
    cfg = get_pretrained_cfg(model, tag)
    if not cfg or not (cfg.get("hf_hub") or cfg.get("url")):
        tags = list_pretrained_tags_by_model(model)
        raise WeightsUnavailable(
            f"--clip_model {model} --clip_pretrained {tag}: not in open_clip's pretrained "
            f"registry ({'tags of ' + model + ': ' + ', '.join(tags) if tags else 'unknown model'}"
            f"). Pick a listed tag (open_clip.list_pretrained()), a --clip_model hf-hub:ORG/REPO, "
            f"or pass the weights file with {flag}"
        )
    layout: Literal["openai", "open_clip"] = "openai" if tag.lower() == "openai" else "open_clip"
    origin = {"hub": "open_clip", "model": model, "pretrained": tag}
    hub = cfg.get("hf_hub", "")
    url = cfg.get("url", "")
    repo, hub_file = os.path.split(hub)  # 'org/repo/' -> default file names, as open_clip
    hub_files = _hub_weight_names(hub_file) if hub else []
    places: list[str] = []
    for name in hub_files:  # 1. the HF cache (open_clip prefers the Hub)
        places.append(str(_repo_folder(repo) / "snapshots" / "*" / name))
        found = _hf_cached(repo, name, None)
        if found is not None:
            return Fetched(found, {**origin, "file": f"{repo}/{name}"}, layout, False, places)
    if url:  # 2. open_clip's URL cache
        local = clip_url_cache_dir() / os.path.basename(url)
        places.append(str(local))
        if local.is_file():
            return Fetched(local, {**origin, "file": url}, layout, False, places)
    what = f"CLIP weights {model}/{tag}"
    if opts.is_offline():
        place = (
            f"place {url} at {clip_url_cache_dir() / os.path.basename(url)}"
            if url
            else f"run `hf download {repo} {hub_files[0]}` where there is network and copy "
            f"{_repo_folder(repo).name} into {hf_cache_dir()} here"
        )
        raise WeightsUnavailable(
            f"no {what} in the caches (looked at {'; '.join(places)}), and offline mode "
            f"(--offline or HF_HUB_OFFLINE=1) forbids downloading them. Either {place}, or pass "
            f"a local file with {flag}, or run without --offline / HF_HUB_OFFLINE to "
            "download them"
        )
    if hub:  # 3. download, from the Hub as open_clip does, else from the URL
        for i, name in enumerate(hub_files):
            try:
                path, _ = hf_fetch(repo, name, None, opts, flag, what)
                return Fetched(path, {**origin, "file": f"{repo}/{name}"}, layout, True, places)
            except NotOnHub:
                if i == len(hub_files) - 1 and not url:
                    raise
    path = url_fetch(url, flag, what)
    return Fetched(path, {**origin, "file": url}, layout, True, places)


def _hub_weight_names(filename: str) -> list[str]:
    """open_clip's file names for an ``hf_hub`` entry, safetensors first."""
    if not filename or filename == OPEN_CLIP_WEIGHTS[1]:
        return list(OPEN_CLIP_WEIGHTS)
    if filename.endswith((".bin", ".pth")):
        return [filename[:-4] + ".safetensors", filename]
    return [filename]


def _fetch_hf_model(repo: str, opts: WeightsOptions) -> Fetched:
    """``hf-hub:ORG/REPO``: its ``open_clip_config.json`` and weights, side by side in the
    HF cache (built with ``open_clip.create_model('local-dir:...')``, no further access)."""
    flag = "--clip_ckpt PATH"
    what = f"open_clip model hf-hub:{repo}"
    origin = {"hub": "huggingface", "model": HF_PREFIX + repo, "repo": repo}
    folder = _repo_folder(repo) / "snapshots" / "*"
    places = [str(folder / n) for n in (OPEN_CLIP_CONFIG, *OPEN_CLIP_WEIGHTS)]
    config = _hf_cached(repo, OPEN_CLIP_CONFIG, None)
    for name in OPEN_CLIP_WEIGHTS:
        found = _hf_cached(repo, name, None)
        if config is not None and found is not None and found.parent == config.parent:
            got = {**origin, "file": name, "revision": _commit_of(found)}
            return Fetched(found, got, "local-dir", False, places)
    config, _ = hf_fetch(repo, OPEN_CLIP_CONFIG, None, opts, flag, what)
    for i, name in enumerate(OPEN_CLIP_WEIGHTS):
        try:
            path, new = hf_fetch(repo, name, _commit_of(config) or None, opts, flag, what)
        except NotOnHub:
            if i == len(OPEN_CLIP_WEIGHTS) - 1:
                raise
            continue
        got = {**origin, "file": name, "revision": _commit_of(path)}
        return Fetched(path, got, "local-dir", new, places)
    raise AssertionError("unreachable")  # pragma: no cover


def event_clip_file(model: str, opts: WeightsOptions) -> str:
    """The event-CLIP file name: ``opts.event_file``, else by the image architecture."""
    if opts.event_file:
        return opts.event_file
    return EVENT_CLIP_FILE_B if model.upper().startswith("VIT-B") else EVENT_CLIP_FILE_L


def fetch_event_clip(model: str, opts: WeightsOptions) -> Fetched:
    """The event-CLIP weights (``opts.event_repo``/:func:`event_clip_file`) from the HF cache,
    else downloaded (unless offline). Read with the safe loader like any file."""
    name = event_clip_file(model, opts)
    flag = "--event_clip_ckpt PATH (in the *_gen_event.py scripts: --clip_ckpt PATH)"
    path, got = hf_fetch(
        opts.event_repo, name, opts.event_revision, opts, flag, "event-CLIP weights"
    )
    origin = {
        "hub": "huggingface",
        "repo": opts.event_repo,
        "file": name,
        "revision": _commit_of(path) or (opts.event_revision or "main"),
    }
    return Fetched(path, origin, "openai", got, [str(_repo_folder(opts.event_repo))])


def options_from_origin(
    origin: dict[str, Any], base: WeightsOptions, clip_model: str
) -> tuple[str, WeightsOptions]:
    """``(clip_model, options)`` that fetch the weights a recorded ``origin`` names again:
    an image tower's ``model`` (and ``pretrained``), or an event tower's repo/file/revision."""
    from dataclasses import replace

    if "model" in origin:
        tag = str(origin.get("pretrained") or base.pretrained)
        return str(origin["model"]), replace(base, pretrained=tag)
    return clip_model, replace(
        base,
        event_repo=str(origin["repo"]),
        event_file=str(origin["file"]),
        event_revision=str(origin.get("revision") or "") or None,
    )


__all__ = [
    "EncoderError",
    "DEFAULT_PRETRAINED",
    "EVENT_CLIP_REPO",
    "Fetched",
    "NotOnHub",
    "WeightsOptions",
    "WeightsUnavailable",
    "clip_url_cache_dir",
    "event_clip_file",
    "expected_sha256",
    "fetch_clip",
    "fetch_event_clip",
    "hf_cache_dir",
    "hf_fetch",
    "options_from_origin",
    "url_fetch",
]
