"""drrserve's command line: bad flags are refused with exit code 2, counts read as numbers."""

import subprocess

from conftest import DRRSERVE, RunningServer


def test_bad_flags_exit_2_with_a_message():
    for args in (["--bogus"], ["--cpu-threads", "many"], ["--cpu-threads", "-1"],
                 ["--cpu-threads", "100000"], ["--device", "tpu"],
                 ["--max-volume-voxels", "-5"], ["--max-volume-voxels", "5e9"]):
        result = subprocess.run([str(DRRSERVE), *args], capture_output=True, text=True, timeout=60)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.startswith("drrserve: "), (args, result.stderr)


def test_help_exits_0_and_lists_the_flags():
    result = subprocess.run([str(DRRSERVE), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert "--max-volume-voxels" in result.stdout and "--preload-phantom" in result.stdout


def test_a_voxel_limit_in_exponent_notation_is_a_count():
    server = RunningServer("--max-volume-voxels", "5e8")
    assert server.stop() == 0
