"""``logsvc aws package``: the Lambda zips, reproducible, with wheels built for each architecture.

pip downloads the pinned wheels from PyPI once for the module (a shared cache directory).
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from logsvc.aws.package import ARCHITECTURES, BuiltZip, PackageError, build_zip
from logsvc.cli import main
from tests.aws.helpers import EVENTS

ELF_MACHINE = {"x86_64": 62, "arm64": 183}  # EM_X86_64, EM_AARCH64
ABSENT = ("starlette", "uvicorn", "apsw", "cryptography", "jwt", "boto3", "botocore", "rich", "click")


@pytest.fixture(scope="module")
def pip_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pip-cache")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, pip_cache: Path) -> dict[str, BuiltZip]:
    output = tmp_path_factory.mktemp("lambda")
    return {arch: build_zip(arch, output, pip_cache=pip_cache) for arch in ARCHITECTURES}


def test_building_again_gives_the_same_bytes(
    built: dict[str, BuiltZip], pip_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    again = build_zip("x86_64", tmp_path / "again", pip_cache=pip_cache)
    assert again.sha256 == built["x86_64"].sha256
    assert hashlib.sha256(Path(again.path).read_bytes()).hexdigest() == again.sha256
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    stamped = build_zip("x86_64", tmp_path / "stamped", pip_cache=pip_cache)
    assert stamped.sha256 != again.sha256
    with zipfile.ZipFile(stamped.path) as archive:
        assert {info.date_time for info in archive.infolist()} == {(2023, 11, 14, 22, 13, 20)}


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_the_zip_holds_the_handlers_and_wheels_for_its_architecture(
    built: dict[str, BuiltZip], arch: str
) -> None:
    result = built[arch]
    assert Path(result.path).name == f"logsvc-lambda-{arch}.zip"
    with zipfile.ZipFile(result.path) as archive:
        infos = archive.infolist()
        names = [info.filename for info in infos]
        assert names == sorted(names)
        assert len(names) == result.files
        assert {"logsvc/__init__.py", "logsvc/aws/handlers.py", "logsvc/aws/events.py"} <= set(names)
        assert "logsvc/aws/requirements-lambda.txt" in names
        machine = "aarch64" if arch == "arm64" else "x86_64"
        assert [n for n in names if n.startswith("msgspec/_core")] == [
            f"msgspec/_core.cpython-312-{machine}-linux-gnu.so"
        ]
        libraries = [n for n in names if n.endswith(".so")]
        # msgspec's, cramjam's, and uuid-utils' and protobuf's (abi3, no architecture in their names)
        assert len(libraries) == 4
        for name in libraries:
            header = archive.read(name)[:20]
            assert header[:4] == b"\x7fELF"
            assert int.from_bytes(header[18:20], "little") == ELF_MACHINE[arch], name
        for info in infos:
            assert info.date_time == (1980, 1, 1, 0, 0, 0)
            assert info.external_attr >> 16 == 0o100644
            assert info.create_system == 3
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert not [
        n for n in names if n.split("/")[-1] in {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}
    ]
    assert not [n for n in names if n.split("/")[0].split("-")[0].split(".")[0] in ABSENT]
    # cramjam (snappy, for Loki's pushes) is about 1 MB of it, protobuf most of the rest.
    assert result.size < 3_500_000


def test_an_unknown_architecture_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PackageError, match="unknown architecture"):
        build_zip("riscv64", tmp_path)


def _python_3_12() -> str | None:
    """A CPython 3.12 interpreter on this machine (on PATH, or one pyenv installed), if any."""
    candidates = [
        shutil.which("python3.12"),
        *map(str, Path.home().glob(".pyenv/versions/3.12*/bin/python3.12")),
    ]
    for candidate in filter(None, candidates):
        check = subprocess.run(
            [candidate, "-c", "import sys; assert sys.version_info[:2] == (3, 12)"],
            capture_output=True,
            timeout=30,
            check=False,
        )
        if check.returncode == 0:
            return candidate
    return None


def test_the_unzipped_x86_64_package_answers_under_python_3_12(
    built: dict[str, BuiltZip], tmp_path: Path
) -> None:
    """Only the zip on the path (-I -S: no site-packages), as in the python3.12 runtime without boto3."""
    python = _python_3_12()
    if python is None or platform.machine() != "x86_64":
        pytest.skip("needs CPython 3.12 on x86_64, as the Lambda runtime")
    root = tmp_path / "task"
    with zipfile.ZipFile(built["x86_64"].path) as archive:
        archive.extractall(root)
    code = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(root)!r})\n"
        "from logsvc.aws import handlers\n"
        "import msgspec, uuid_utils\n"
        "assert msgspec.__file__.startswith(sys.path[0]) and handlers.__file__.startswith(sys.path[0])\n"
        # What a Loki push needs, loaded from the zip: snappy, and the messages built from descriptors.
        "import cramjam\n"
        "from logsvc.domain.loki_proto import push_request\n"
        "assert cramjam.__file__.startswith(sys.path[0])\n"
        "assert bytes(cramjam.snappy.decompress_raw(cramjam.snappy.compress_raw(b'ab' * 50))) == b'ab' * 50\n"
        "assert push_request()(streams=[{'labels': b'{a=\"b\"}'}]).streams[0].labels == b'{a=\"b\"}'\n"
        "event = json.load(open(sys.argv[1]))\n"
        "print(json.dumps(handlers.ingest(event, None)))\n"
    )
    event = EVENTS / "function_url_none_ingest.json"
    done = subprocess.run(
        [python, "-I", "-S", "-c", code, str(event)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    answer = json.loads(done.stdout.splitlines()[-1])
    assert answer["statusCode"] == 401
    assert json.loads(answer["body"])["code"] == "missing_authentication_token"


def test_the_command_prints_what_it_built(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["aws", "package", "--arch", "arm64", "--output", str(tmp_path), "--json"]
    )
    assert result.exit_code == 0, result.output
    [only] = json.loads(result.output)
    assert (only["arch"], Path(only["path"])) == ("arm64", tmp_path / "logsvc-lambda-arm64.zip")
    assert only["sha256"] == hashlib.sha256(Path(only["path"]).read_bytes()).hexdigest()
    refused = CliRunner().invoke(main, ["aws", "package", "--arch", "mips"])
    assert refused.exit_code == 2
