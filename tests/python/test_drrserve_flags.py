"""drrserve's command line: bad flags, and flags the server refuses together as it starts, exit
with code 2; counts read as numbers."""

import subprocess

from conftest import DRRSERVE, RunningServer


def test_bad_flags_exit_2_with_a_message():
    for args in (["--bogus"], ["--cpu-threads", "many"], ["--cpu-threads", "-1"],
                 ["--cpu-threads", "100000"], ["--device", "tpu"],
                 ["--max-volume-voxels", "-5"], ["--max-volume-voxels", "5e9"]):
        result = subprocess.run([str(DRRSERVE), *args], capture_output=True, text=True, timeout=60)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.startswith("drrserve: "), (args, result.stderr)


def test_flags_the_server_refuses_as_it_starts_exit_2_with_a_message(tmp_path):
    missing = str(tmp_path / "missing")
    for args, named in ((["--device", "cpu", "--devices", "0,1,2,3", "--cpu-threads", "512"],
                         "--cpu-threads 512 for each of 4 CPU executors"),
                        (["--tokens", missing], "--tokens"),
                        (["--tls-cert", missing], "--tls-cert and --tls-key go together")):
        result = subprocess.run(
            [str(DRRSERVE), "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", *args],
            capture_output=True, text=True, timeout=60)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.startswith("drrserve: INVALID_ARGUMENT: "), (args, result.stderr)
        assert named in result.stderr, (args, result.stderr)


def test_help_exits_0_and_lists_the_flags():
    result = subprocess.run([str(DRRSERVE), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert "--max-volume-voxels" in result.stdout and "--preload-phantom" in result.stdout


def test_a_voxel_limit_in_exponent_notation_is_a_count():
    server = RunningServer("--max-volume-voxels", "5e8")
    assert server.stop() == 0
