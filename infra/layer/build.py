"""Build the Lambda layers (``make layer``): each ``requirements-lambda.<group>.txt`` → ``build/lambda-layers/<group>``.

One layer per group of :mod:`infra.layer.groups`, each from its own lock:

* Up to date (its stamp holds its lock's sha256): nothing to do, no network.
* Otherwise the lock's wheels (arm64 / CPython 3.13, hashes checked) are installed from the
  wheelhouse cache ``build/wheelhouse`` with ``--no-index``; only when the cache lacks some of them
  does pip download them (the package index is needed then, once). So after one online build,
  ``make layer`` / ``make synth`` work offline, and CI can restore ``build/wheelhouse`` as a cache.
* ``--offline`` never downloads (fails if the cache is incomplete).

The install is ``--no-deps --require-hashes --no-compile`` (the lock is complete; ``.pyc`` files
compiled by the build machine's Python would be useless to 3.13) into a temporary directory that
replaces the previous layer only when complete.

urllib3-future's wheel carries a second copy of itself as ``urllib3/`` and a ``.pth`` that, in a
site-packages, overwrites the real urllib3 with it at every interpreter start. Lambda puts
``/opt/python`` on ``sys.path`` without processing ``.pth`` files, and extracts a function's
layers one over the other: left in the ``caldav`` layer, that ``urllib3/`` would overwrite files of
the real urllib3 of the ``core`` layer, which botocore uses. So both are removed from any layer
that does not hold the ``urllib3`` distribution itself: ``urllib3`` is always the real urllib3,
and niquests, seeing it, uses ``urllib3_future`` under that name (its documented fallback).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from infra.layer import BUILD_ROOT, PLATFORM_ARGS, ROOT, STAMP_NAME, WHEELHOUSE, group_lock_file, layer_dir, lock_digest
from infra.layer.groups import GROUPS

#: What urllib3-future installs besides ``urllib3_future/`` (see the module docstring).
URLLIB3_FUTURE_SHADOWS = ("urllib3", "urllib3_future.pth")


def is_current(group: str, build_root: Path = BUILD_ROOT) -> bool:
    """Whether ``group``'s layer under ``build_root`` was built from its current lock file."""
    directory = layer_dir(group, build_root)
    stamp = directory / STAMP_NAME
    return stamp.is_file() and stamp.read_text().strip() == lock_digest(group) and (directory / "python").is_dir()


def _pip(*args: str, quiet: bool = False) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(  # noqa: S603 - fixed argv, our own interpreter
        [sys.executable, "-m", "pip", *args], check=False, capture_output=quiet
    )


def _install(lock: Path, target: Path, *, quiet: bool = False) -> bool:
    """Install ``lock`` from the wheelhouse only; ``quiet`` hides pip's complaints about missing wheels."""
    result = _pip(
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-deps",
        "--require-hashes",
        "--no-compile",
        "--no-index",
        "--find-links",
        str(WHEELHOUSE),
        "--target",
        str(target),
        *PLATFORM_ARGS,
        "-r",
        str(lock),
        quiet=quiet,
    )
    return result.returncode == 0


def _download(lock: Path) -> bool:
    WHEELHOUSE.mkdir(parents=True, exist_ok=True)
    result = _pip(
        "download",
        "--quiet",
        "--disable-pip-version-check",
        "--no-deps",
        "--require-hashes",
        "--dest",
        str(WHEELHOUSE),
        *PLATFORM_ARGS,
        "-r",
        str(lock),
    )
    return result.returncode == 0


def drop_urllib3_future_shadows(target: Path) -> list[str]:
    """Remove urllib3-future's ``urllib3/`` copy and ``.pth`` unless ``target`` holds the real urllib3."""
    if not (target / "urllib3_future").is_dir() or any(target.glob("urllib3-*.dist-info")):
        return []
    removed = []
    for name in URLLIB3_FUTURE_SHADOWS:
        path = target / name
        if path.is_dir():
            shutil.rmtree(path)
            removed.append(name)
        elif path.exists():
            path.unlink()
            removed.append(name)
    return removed


def layer_size(directory: Path) -> int:
    """Bytes of every file under ``directory`` (unzipped size)."""
    return sum(f.stat().st_size for f in directory.rglob("*") if f.is_file())


def build_group(group: str, *, offline: bool = False, force: bool = False, build_root: Path = BUILD_ROOT) -> Path:
    """Build one group's layer if needed; returns its directory (raises ``SystemExit`` on failure)."""
    directory = layer_dir(group, build_root)
    lock = group_lock_file(group)
    if not force and is_current(group, build_root):
        print(f"layer {group}: up to date ({directory.relative_to(ROOT)})")
        return directory
    staging = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    target = staging / "python"
    target.mkdir(parents=True)
    if not _install(lock, target, quiet=not offline):
        if offline:
            raise SystemExit(
                f"layer {group}: {WHEELHOUSE.relative_to(ROOT)} lacks wheels of {lock.name} and --offline was given; "
                "run `make layer` once with access to the package index (or synthesise with -c layer=placeholder)."
            )
        print(f"layer {group}: downloading the missing wheels into the wheelhouse cache")
        shutil.rmtree(staging, ignore_errors=True)
        target.mkdir(parents=True)
        if not _download(lock) or not _install(lock, target):
            raise SystemExit(f"layer {group}: could not download or install the locked wheels (see pip's output above)")
    for cache in target.rglob("__pycache__"):
        shutil.rmtree(cache, ignore_errors=True)
    shutil.rmtree(target / "bin", ignore_errors=True)  # console scripts: nothing runs them in Lambda
    removed = drop_urllib3_future_shadows(target)
    (staging / STAMP_NAME).write_text(lock_digest(group) + "\n")
    shutil.rmtree(directory, ignore_errors=True)
    staging.rename(directory)
    note = f"; removed urllib3-future's {', '.join(removed)}" if removed else ""
    print(f"layer {group}: built {directory.relative_to(ROOT)} ({layer_size(directory) / 1e6:.1f} MB unzipped{note})")
    return directory


def build(*, offline: bool = False, force: bool = False) -> Path:
    """Build every group's layer that is missing or stale; returns ``build/lambda-layers``."""
    for group in GROUPS:
        build_group(group.name, offline=offline, force=force)
    return BUILD_ROOT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--offline", action="store_true", help="never download; use the wheelhouse cache only")
    parser.add_argument("--force", action="store_true", help="rebuild even if a layer matches its lock")
    args = parser.parse_args(argv)
    build(offline=args.offline, force=args.force)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
