"""Build the Lambda layer (``make layer``): ``requirements-lambda.txt`` → ``build/lambda-layer/python``.

* Up to date (the stamp holds the lock's sha256): nothing to do, no network.
* Otherwise the lock's wheels (arm64 / CPython 3.13, hashes checked) are installed from the
  wheelhouse cache ``build/wheelhouse`` with ``--no-index``; only when the cache lacks some of them
  does pip download them (the package index is needed then, once). So after one online build,
  ``make layer`` / ``make synth`` work offline, and CI can restore ``build/wheelhouse`` as a cache.
* ``--offline`` never downloads (fails if the cache is incomplete).

The install is ``--no-deps --require-hashes --no-compile`` (the lock is complete; ``.pyc`` files
compiled by the build machine's Python would be useless to 3.13) into a temporary directory that
replaces the previous layer only when complete.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from infra.layer import BUILD_DIR, LOCK_FILE, PLATFORM_ARGS, ROOT, STAMP_NAME, WHEELHOUSE, lock_digest


def is_current(build_dir: Path = BUILD_DIR) -> bool:
    """Whether ``build_dir`` holds a layer built from the current lock file."""
    stamp = build_dir / STAMP_NAME
    return stamp.is_file() and stamp.read_text().strip() == lock_digest() and (build_dir / "python").is_dir()


def _pip(*args: str, quiet: bool = False) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(  # noqa: S603 - fixed argv, our own interpreter
        [sys.executable, "-m", "pip", *args], check=False, capture_output=quiet
    )


def _install(target: Path, *, quiet: bool = False) -> bool:
    """Install the lock from the wheelhouse only; ``quiet`` hides pip's complaints about missing wheels."""
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
        str(LOCK_FILE),
        quiet=quiet,
    )
    return result.returncode == 0


def _download() -> bool:
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
        str(LOCK_FILE),
    )
    return result.returncode == 0


def build(*, offline: bool = False, force: bool = False) -> Path:
    """Build the layer if needed; returns its directory (raises ``SystemExit`` on failure)."""
    if not force and is_current():
        print(f"layer up to date: {BUILD_DIR.relative_to(ROOT)}")
        return BUILD_DIR
    staging = BUILD_DIR.with_name(BUILD_DIR.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    target = staging / "python"
    target.mkdir(parents=True)
    if not _install(target, quiet=not offline):
        if offline:
            raise SystemExit(
                f"layer: {WHEELHOUSE.relative_to(ROOT)} lacks wheels of the lock and --offline was given; "
                "run `make layer` once with access to the package index (or synthesise with -c layer=placeholder)."
            )
        print("layer: downloading the missing wheels into the wheelhouse cache")
        shutil.rmtree(staging, ignore_errors=True)
        target.mkdir(parents=True)
        if not _download() or not _install(target):
            raise SystemExit("layer: could not download or install the locked wheels (see pip's output above)")
    for cache in target.rglob("__pycache__"):
        shutil.rmtree(cache, ignore_errors=True)
    shutil.rmtree(target / "bin", ignore_errors=True)  # console scripts: nothing runs them in Lambda
    (staging / STAMP_NAME).write_text(lock_digest() + "\n")
    shutil.rmtree(BUILD_DIR, ignore_errors=True)
    staging.rename(BUILD_DIR)
    size = sum(f.stat().st_size for f in BUILD_DIR.rglob("*") if f.is_file())
    print(f"layer built: {BUILD_DIR.relative_to(ROOT)} ({size / 1e6:.1f} MB unzipped)")
    return BUILD_DIR


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--offline", action="store_true", help="never download; use the wheelhouse cache only")
    parser.add_argument("--force", action="store_true", help="rebuild even if the layer matches the lock")
    args = parser.parse_args(argv)
    build(offline=args.offline, force=args.force)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
