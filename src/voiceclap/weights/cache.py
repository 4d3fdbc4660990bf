"""The cache of built base weights: where it lives, one build per name under a lock, and a build record
whose checksums are verified before a directory is reused.

``<cache>`` is ``$VOICECLAP_CACHE``, default ``~/.cache/voiceclap``; a build goes to
``<cache>/offline/<key>/`` with ``voiceclap-build.json`` (SHA-256 of every file, the source packages'
versions) beside its files. Later calls verify those sums (once per process) and reuse the directory,
rebuilding it when they do not match.

Hashing the weights (hundreds of MB) at every start would cost seconds, so a file's digest is stamped
in ``<cache>/digests/`` with the file's size and mtime: later processes trust the stamp while both
still match and read the file again only when one changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
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

DIGEST_STAMPS = "digests"
# A file modified less than this long ago may be modified again within the same mtime tick (file
# systems keep coarse clocks), which a stamp could not tell apart: its digest is not stamped yet.
_RACY_WINDOW_NS = 2_000_000_000

# A builder fills the directory it is given and returns the source packages' versions.
Builder = Callable[[Path], dict[str, str | None]]


def cache_root() -> Path:
    """VoiceCLAP's cache directory: ``$VOICECLAP_CACHE``, else ``~/.cache/voiceclap``."""
    return Path(os.environ.get("VOICECLAP_CACHE") or "~/.cache/voiceclap").expanduser()


# Directories verified in this process, with their build record's mtime: the sums are checked
# once per process, not at every model load.
_VERIFIED: dict[Path, int] = {}
_FILE_DIGESTS: dict[tuple[Path, int, int], str] = {}


def _read_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _stamp_path(path: Path) -> Path:
    return cache_root() / DIGEST_STAMPS / f"{hashlib.sha256(str(path).encode()).hexdigest()}.json"


def _write_stamp(stamp_path: Path, stamp: dict) -> None:
    """Atomically (concurrent ranks stamp the same files); a cache that cannot be written only costs
    a re-read at the next start."""
    try:
        stamp_path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=stamp_path.parent, suffix=".tmp", delete=False,
                                         encoding="utf-8") as fh:
            json.dump(stamp, fh)
        os.replace(fh.name, stamp_path)
    except OSError as error:
        logger.debug("cannot stamp the digest of %s: %s", stamp["path"], error)


def file_sha256(path: Path) -> str:
    """A file's sha256, read once per process and stamped across processes: a later start reads the
    file again only if its size or mtime changed (a cache check and a base checksum both ask)."""
    path = path.resolve()
    stat = path.stat()
    key = (path, stat.st_size, stat.st_mtime_ns)
    if key in _FILE_DIGESTS:
        return _FILE_DIGESTS[key]
    stamp = {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    stamp_path = _stamp_path(path)
    try:
        stored = json.loads(stamp_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        stored = {}
    if isinstance(stored, dict) and stored.get("sha256") and all(stored.get(k) == v for k, v in stamp.items()):
        digest = stored["sha256"]
    else:
        digest = _read_sha256(path)
        if time.time_ns() - stat.st_mtime_ns > _RACY_WINDOW_NS:
            _write_stamp(stamp_path, {**stamp, "sha256": digest})
    _FILE_DIGESTS[key] = digest
    return digest


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
