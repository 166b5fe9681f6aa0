"""The Lambda deployment zips: logsvc's source and its pinned manylinux wheels, for Python 3.12.

One zip per architecture (``logsvc-lambda-x86_64.zip``, ``logsvc-lambda-arm64.zip``). pip installs the exact
versions and hashes of ``requirements-lambda.txt`` for the target platform (``--platform manylinux2014_*
--implementation cp --python-version 3.12 --only-binary=:all:``), never for the machine that builds.

The same inputs give the same bytes: entries sorted by name, every timestamp ``SOURCE_DATE_EPOCH`` (or
1980-01-01, the earliest a zip can hold), every file mode 0644, no bytecode (the runtime's Python compiles its
own), and none of the installer's records (``RECORD``, ``INSTALLER``, ``REQUESTED``, ``direct_url.json``).
Deflate output depends on the zlib build, so two machines may differ while each repeats itself.

boto3 is not bundled. The Lambda Python runtime provides it; the store calls only DynamoDB operations that
have been stable for years (GetItem, PutItem, BatchWriteItem, Query) with botocore's standard retry mode,
which any runtime version has. Bundling a pinned boto3 would add about 15 MB to each zip and to every cold
start's unpacking, and take on patching it ourselves; the runtime's copy gets AWS's security updates.
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import msgspec

import logsvc

__all__ = [
    "ARCHITECTURES",
    "PYTHON_VERSION",
    "REQUIREMENTS",
    "BuiltZip",
    "PackageError",
    "build",
    "build_zip",
]

PYTHON_VERSION = "3.12"
# Lambda's architecture names and the wheel platform each takes.
ARCHITECTURES = {"x86_64": "manylinux2014_x86_64", "arm64": "manylinux2014_aarch64"}
REQUIREMENTS = Path(__file__).with_name("requirements-lambda.txt")
_ZIP_EPOCH_FLOOR = 315_532_800  # 1980-01-01T00:00:00Z
_INSTALLER_RECORDS = frozenset({"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"})
_PIP_TIMEOUT_SECONDS = 600


class PackageError(Exception):
    """The zip could not be built; the message says why (pip's own last lines included)."""


class BuiltZip(msgspec.Struct, frozen=True):
    arch: str
    path: str
    size: int
    sha256: str
    files: int


def build(
    arches: Iterable[str], output: Path, *, pip_cache: Path | None = None, epoch: int | None = None
) -> list[BuiltZip]:
    """One zip per architecture in ``output``."""
    return [build_zip(arch, output, pip_cache=pip_cache, epoch=epoch) for arch in arches]


def build_zip(
    arch: str, output: Path, *, pip_cache: Path | None = None, epoch: int | None = None
) -> BuiltZip:
    """``output/logsvc-lambda-<arch>.zip``; ``epoch`` (else ``SOURCE_DATE_EPOCH``) stamps every entry."""
    if arch not in ARCHITECTURES:
        raise PackageError(f"unknown architecture {arch!r}: use one of {', '.join(ARCHITECTURES)}")
    output.mkdir(parents=True, exist_ok=True)
    target = output / f"logsvc-lambda-{arch}.zip"
    with tempfile.TemporaryDirectory(prefix="logsvc-lambda-") as work:
        site = Path(work) / "site"
        _pip_install(ARCHITECTURES[arch], site, pip_cache)
        entries = dict(_installed_files(site))
        source = Path(logsvc.__file__).resolve().parent
        entries.update((f"logsvc/{name}", path) for name, path in _source_files(source))
        partial = target.with_name(target.name + ".partial")
        _write_zip(partial, entries, _zip_time(epoch))
        os.replace(partial, target)
    data = target.read_bytes()
    return BuiltZip(arch, str(target), len(data), hashlib.sha256(data).hexdigest(), len(entries))


def _pip_install(platform: str, site: Path, cache: Path | None) -> None:
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-input",
        "--no-compile",
        "--require-hashes",
        "--only-binary=:all:",
        "--implementation",
        "cp",
        "--python-version",
        PYTHON_VERSION,
        "--platform",
        platform,
        "--target",
        str(site),
        "--requirement",
        str(REQUIREMENTS),
    ]
    command += ["--cache-dir", str(cache)] if cache is not None else ["--no-cache-dir"]
    try:
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=_PIP_TIMEOUT_SECONDS)
    except subprocess.CalledProcessError as exc:
        tail = "\n".join(line for line in exc.stderr.splitlines()[-15:] if "is ignored" not in line)
        raise PackageError(f"pip could not install the wheels for {platform}:\n{tail}") from None
    except subprocess.TimeoutExpired:
        raise PackageError(f"pip took over {_PIP_TIMEOUT_SECONDS} s to install the wheels") from None


def _installed_files(site: Path) -> Iterator[tuple[str, Path]]:
    """What pip put in ``site``, less bytecode, scripts and the installer's own records."""
    for path in sorted(site.rglob("*")):
        relative = path.relative_to(site)
        if not path.is_file() or _is_bytecode(relative) or relative.parts[0] == "bin":
            continue
        if relative.parts[0].endswith(".dist-info") and relative.name in _INSTALLER_RECORDS:
            continue
        yield relative.as_posix(), path


def _source_files(source: Path) -> Iterator[tuple[str, Path]]:
    """The logsvc package as it is on disk, without bytecode or hidden files."""
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        hidden = any(part.startswith(".") for part in relative.parts)
        if path.is_file() and not hidden and not _is_bytecode(relative):
            yield relative.as_posix(), path


def _is_bytecode(relative: Path) -> bool:
    return "__pycache__" in relative.parts or relative.suffix in (".pyc", ".pyo")


def _zip_time(epoch: int | None) -> tuple[int, int, int, int, int, int]:
    if epoch is None:
        value = os.environ.get("SOURCE_DATE_EPOCH", "")
        if value and not value.isdigit():
            raise PackageError(f"SOURCE_DATE_EPOCH must be whole seconds since 1970, not {value!r}")
        epoch = int(value) if value else _ZIP_EPOCH_FLOOR
    year, month, day, hour, minute, second = time.gmtime(max(epoch, _ZIP_EPOCH_FLOOR))[:6]
    return year, month, day, hour, minute, second


def _write_zip(path: Path, entries: dict[str, Path], when: tuple[int, int, int, int, int, int]) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=when)
            info.create_system = 3  # Unix, so that the mode below is read
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, entries[name].read_bytes(), compresslevel=9)
