"""vega_toolkit/launch/preloaded.py: a command forked from the preloaded server behaves as the same command started
in a fresh interpreter: output, exit status, environment, working folder, argv, threads and signals."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from vega_toolkit.launch.preloaded import PreloadedCommands, ServerError, toolkit_entry_point

pytestmark = pytest.mark.slow  # each test starts a server that imports fairseq (and some, fresh interpreters too)
BIN = Path(sys.executable).parent
PROBE = textwrap.dedent(
    """
    import json, os, sys, time

    import torch


    def main():
        print(json.dumps({"cwd": os.getcwd(), "probe": os.environ.get("PROBE"), "threads": torch.get_num_threads(),
                          "argv": sys.argv, "pid": os.getpid(), "fairseq_loaded": "fairseq" in sys.modules}))
        if sys.argv[1] == "sleep":
            time.sleep(60)
        return int(sys.argv[1]) if sys.argv[1].isdigit() else sys.argv[1]
    """
)


@pytest.fixture
def commands(tmp_path, monkeypatch):
    """A launcher whose server can also import tests' probe module (on PYTHONPATH when the server starts)."""
    (tmp_path / "probe_mod").mkdir()
    (tmp_path / "probe_mod" / "preload_probe.py").write_text(PROBE)
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path / 'probe_mod'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    launcher = PreloadedCommands()
    yield launcher
    launcher.close()


def env(**extra):
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "OMP_NUM_THREADS": "1", **extra}


def test_toolkit_commands_give_the_output_and_status_of_a_fresh_interpreter(commands, tmp_path):
    cases = (
        ["vega-glue", "--help"],  # 0
        ["vega-train", str(tmp_path / "missing-data-bin"), "--task", "denoising_pretrain"],  # one-line user error: 1
        ["vega-glue", "no-such-subcommand"],  # argparse: 2
    )
    statuses = []
    for command in cases:
        fresh_log, forked_log = tmp_path / "fresh.log", tmp_path / "forked.log"
        with fresh_log.open("w") as log:
            fresh = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env(), cwd=tmp_path)
        forked_log.write_text("")
        forked = commands.start(command, forked_log, env(), tmp_path)
        assert forked.wait(120) == fresh.returncode
        assert forked_log.read_text() == fresh_log.read_text()
        statuses.append(fresh.returncode)
    assert statuses == [0, 1, 2]
    assert commands.start(["bash", "-c", "true"], tmp_path / "x.log", env(), tmp_path) is None
    assert toolkit_entry_point("vega-train") == "vega_toolkit.cli.train:cli_main"


def test_each_command_gets_its_own_environment_folder_argv_and_threads(commands, tmp_path):
    runs = []
    for k, threads in enumerate(("1", "2")):
        log, cwd = tmp_path / f"{k}.log", tmp_path / f"cwd{k}"
        cwd.mkdir()
        proc = commands.start_entry(
            "preload_probe:main", ["probe", str(k + 3)], log, env(PROBE=f"value{k}", OMP_NUM_THREADS=threads), cwd
        )
        assert proc.wait(120) == k + 3
        runs.append((json.loads(log.read_text()), proc.pid))
    for k, (seen, pid) in enumerate(runs):
        assert seen == {
            "cwd": str(tmp_path / f"cwd{k}"),
            "probe": f"value{k}",
            "threads": k + 1,
            "argv": ["probe", str(k + 3)],
            "pid": pid,
            "fairseq_loaded": True,  # imported once by the server, before the fork
        }
    assert runs[0][1] != runs[1][1]
    # given no thread count, a command gets a fresh interpreter's default, whatever its caller's environment held
    default = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
        env={k: v for k, v in env().items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")},
        capture_output=True,
        text=True,
    )
    unset = {k: v for k, v in env().items() if k != "OMP_NUM_THREADS"}
    proc = commands.start_entry("preload_probe:main", ["probe", "0"], tmp_path / "u.log", unset, tmp_path)
    assert proc.wait(120) == 0 and json.loads((tmp_path / "u.log").read_text())["threads"] == int(default.stdout)
    # a message given to SystemExit (or returned) is printed and the status is 1, as in an interpreter
    proc = commands.start_entry("preload_probe:main", ["probe", "it failed"], tmp_path / "m.log", env(), tmp_path)
    assert proc.wait(120) == 1 and (tmp_path / "m.log").read_text().splitlines()[-1] == "it failed"


def test_a_signal_reaches_the_command_and_its_status_still_comes_after_close(commands, tmp_path):
    log = tmp_path / "sleep.log"
    proc = commands.start_entry("preload_probe:main", ["probe", "sleep"], log, env(), tmp_path)
    deadline = time.monotonic() + 120
    while not (log.exists() and log.read_text()):  # started
        assert time.monotonic() < deadline
        time.sleep(0.05)
    commands.close()  # no new commands; the running one is still waited for and reported
    with pytest.raises(subprocess.TimeoutExpired):
        proc.wait(0.5)
    assert Path(f"/proc/{proc.pid}/comm").read_text().strip() == "probe"  # named after its command in ps and pgrep
    proc.terminate()
    assert proc.wait(30) == -signal.SIGTERM and proc.poll() == -signal.SIGTERM


def test_a_script_without_a_main_guard_can_start_commands(tmp_path):
    # multiprocessing's forkserver imports the caller's __main__ again in each child, which breaks such a script
    script = tmp_path / "drive.py"
    script.write_text(
        "import os, sys\n"
        "from vega_toolkit.launch.preloaded import PreloadedCommands\n"
        "commands = PreloadedCommands()\n"
        f"proc = commands.start(['vega-glue', '--help'], {str(tmp_path / 'g.log')!r}, dict(os.environ), '.')\n"
        "print('status', proc.wait(120))\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env(), timeout=300)
    assert done.stdout.strip() == "status 0", done.stderr[-2000:]
    assert "usage: vega-glue" in (tmp_path / "g.log").read_text()


def test_a_command_whose_server_died_ends_with_status_1_and_a_closed_launcher_starts_a_new_server(commands, tmp_path):
    log = tmp_path / "orphan.log"
    orphan = commands.start_entry("preload_probe:main", ["probe", "sleep"], log, env(), tmp_path)
    commands._server.kill()  # e.g. the kernel's OOM killer
    commands._server.wait()
    with pytest.raises(subprocess.TimeoutExpired):
        orphan.wait(1.0)  # still running, now an orphan
    os.kill(orphan.pid, signal.SIGTERM)
    assert orphan.wait(30) == 1  # its status went with the server
    commands.close()
    again = commands.start_entry("preload_probe:main", ["probe", "0"], tmp_path / "again.log", env(), tmp_path)
    assert again.wait(120) == 0


def test_a_server_that_cannot_start_is_one_error_and_the_study_falls_back_to_fresh_interpreters(tmp_path, capsys):
    broken = PreloadedCommands(preload=("vega_toolkit.no_such_module",))
    with pytest.raises(ServerError, match="ended before starting `vega-glue`: .*No module named 'vega_toolkit.no_such"):
        broken.start_entry(
            "vega_toolkit.cli.glue:cli_main", ["vega-glue", "--help"], tmp_path / "g.log", env(), tmp_path
        )
    capsys.readouterr()
    # what the study runner and the demo call: None (they start a fresh interpreter), with one line said once
    assert broken.start(["vega-glue", "--help"], tmp_path / "h.log", env(), tmp_path) is None
    assert broken.start(["vega-train", "--help"], tmp_path / "i.log", env(), tmp_path) is None
    said = [line for line in capsys.readouterr().err.splitlines() if line.startswith("vega: ")]
    assert len(said) == 1 and "No module named 'vega_toolkit.no_such_module'" in said[0]
    assert said[0].endswith("every later command starts in a fresh interpreter")
