"""The `dlcls` command line: exit codes, summaries, and the jobs/ entry points sharing its parser."""

import subprocess
import sys
from pathlib import Path

import pytest

from dlcls import synthetic
from dlcls.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_preprocess_command_prints_a_summary_naming_every_output(ray_local, tmp_path, capsys):
    synthetic.write_data_set(tmp_path / "images", per_class=4, size=32, seed=3)
    code = main(["preprocess", str(tmp_path / "images"), str(tmp_path / "shards"), "--image-dimensions", "32", "32",
                 "3", "--rows-per-shard", "8"])
    out = capsys.readouterr().out
    assert code == 0
    assert "20 files listed, 20 preprocessed, 0 errors" in out
    for name in ["shards/", "errors.parquet", "listing.parquet", "manifest.json"]:
        assert str(tmp_path / "shards" / name) in out
    assert "crack" in out and "validation" in out


def test_a_failing_command_exits_1_with_a_one_line_reason(ray_local, tmp_path, capsys):
    assert main(["preprocess", str(tmp_path / "missing"), str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("dlcls preprocess: error:") and "does not exist" in err and "\n" not in err


def test_bad_usage_exits_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["preprocess", "only-a-source"])
    assert e.value.code == 2


@pytest.mark.parametrize("job", sorted(p.stem for p in (ROOT / "jobs").glob("*.py")))
def test_every_job_script_shares_the_commands_parser(job):
    out = subprocess.run([sys.executable, str(ROOT / "jobs" / f"{job}.py"), "--help"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert f"usage: dlcls {job}" in out.stdout and "example:" in out.stdout
