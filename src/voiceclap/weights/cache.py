"""The cache of built base weights: where it lives, one build per name under a lock, and a build record
whose checksums are verified before a directory is reused.

``<cache>`` is ``$VOICECLAP_CACHE``, default ``~/.cache/voiceclap``; a build goes to
``<cache>/offline/<key>/`` with ``voiceclap-build.json`` (SHA-256 of every file, the source packages'
versions) beside its files. Later calls verify those sums (once per process) and reuse the directory,
rebuilding it when they do not match.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: concurrent first builds are then not serialized.
    fcntl = None

__all__ = ["BUILD_RECORD", "cache_root", "ensure_built", "file_sha256"]

logger = logging.getLogger(__name__)

BUILD_RECORD = "voiceclap-build.json"
# Bumped whenever a builder's output changes, so caches written by older code are rebuilt.
BUILD_FORMAT = 1

# A builder fills the directory it is given and returns the source packages' versions.
Builder = Callable[[Path], dict[str, str | None]]


def cache_root() -> Path:
    """VoiceCLAP's cache directory: ``$VOICECLAP_CACHE``, else ``~/.cache/voiceclap``."""
    return Path(os.environ.get("VOICECLAP_CACHE") or "~/.cache/voiceclap").expanduser()


# Directories verified in this process, with their build record's mtime: the sums are checked
# once per process, not at every model load.
_VERIFIED: dict[Path, int] = {}
_FILE_DIGESTS: dict[tuple[Path, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """A file's sha256, read once per process (a cache check and a base checksum both ask)."""
    stat = path.stat()
    key = (path.resolve(), stat.st_size, stat.st_mtime_ns)
    if key not in _FILE_DIGESTS:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                digest.update(chunk)
        _FILE_DIGESTS[key] = digest.hexdigest()
    return _FILE_DIGESTS[key]


def _verified(directory: Path, source: str) -> bool:
    record_path = directory / BUILD_RECORD
    try:
        mtime = record_path.stat().st_mtime_ns
        if _VERIFIED.get(directory) == mtime:
            return True
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if record.get("format") != BUILD_FORMAT or record.get("source") != source:
        return False
    files = record.get("files")
    if not files:
        return False
    for name, digest in files.items():
        path = directory / name
        if not path.is_file() or file_sha256(path) != digest:
            logger.warning("%s: %s does not match its checksum; rebuilding", directory, name)
            return False
    _VERIFIED[directory] = mtime
    return True


@contextlib.contextmanager
def _exclusive(lock_path: Path):
    """Serializes first builds across processes (e.g. every torchrun rank resolving one name)."""
    with open(lock_path, "a+b") as fh:
        if fcntl is not None:
            fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def ensure_built(source: str, key: str, build: Builder) -> Path:
    """``<cache>/offline/<key>``, built by ``build`` unless a verified build of ``source`` is there."""
    root = cache_root() / "offline"
    target = root / key
    if _verified(target, source):
        return target
    root.mkdir(parents=True, exist_ok=True)
    with _exclusive(root / f".{key}.lock"):
        if _verified(target, source):  # another process finished the build while we waited
            return target
        logger.info("building %s into %s (once)", source, target)
        staging = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=root))
        staging.chmod(0o755)  # mkdtemp makes it private; the cache is meant to be shared
        try:
            versions = build(staging)
            files = {}
            for f in sorted(staging.iterdir()):
                f.chmod(0o644)  # some writers (safetensors) create files private to their owner
                files[f.name] = file_sha256(f)
            record = {"source": source, "format": BUILD_FORMAT, "packages": versions,
                      "files": files}
            (staging / BUILD_RECORD).write_text(json.dumps(record, indent=2), encoding="utf-8")
            if target.exists():
                shutil.rmtree(target)
            os.replace(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return target
