"""Run the toolkit's own commands (`vega-train`, `vega-generate`, ...) in processes forked from one server that has
already imported fairseq and the plugins, instead of in a fresh interpreter each (about 4 CPU s of imports less per
command: benchmarks/README.md, "Preloaded commands").

    commands = PreloadedCommands()
    proc = commands.start(["vega-train", "data-bin", "--task", ...], log_path, env, cwd)   # None: not a toolkit command
    rc = proc.wait()

The server (`python -m vega_toolkit.launch.preloaded`, started on the first command) imports the command modules once
and then only forks; each command is its own process (pid, log, environment, working folder, exit status, signals),
and exits as an interpreter would. Why, and what is set again in the child: docs/design.md#preloaded-commands.
"""

import atexit
import collections
import importlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import traceback
import weakref
from importlib.metadata import entry_points

# the modules of the commands a study runs, imported once by the server (each imports fairseq and the plugins)
PRELOAD = (
    "vega_toolkit.cli.train",
    "vega_toolkit.cli.generate",
    "vega_toolkit.cli.convert",
    "vega_toolkit.cli.glue",
    "vega_toolkit.cli.preprocess",
)


def toolkit_entry_point(program: str) -> str | None:
    """'module:function' of the toolkit's console script `program` ('vega-train'), None for any other program."""
    for ep in entry_points(group="console_scripts", name=program):
        if ep.value.startswith("vega_toolkit."):
            return ep.value
    return None


# read once, when torch and the BLAS libraries load: the server starts without them, each command sets its own
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
# how long a start waits for the server to fork its command; the first one includes the server's imports, minutes on
# a loaded machine at nice 19
SERVER_START_S = 900


# ---------------------------------------------------------------------------------------------------- the caller's side
class ForkedCommand:
    """One command running in a child of the server: the part of subprocess.Popen's interface a runner uses."""

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None
        self._exited = threading.Event()

    def _exit(self, returncode: int):
        self.returncode = returncode
        self._exited.set()

    def wait(self, timeout: float | None = None) -> int:
        if not self._exited.wait(timeout):
            raise subprocess.TimeoutExpired(str(self.pid), timeout)
        return self.returncode

    def poll(self) -> int | None:
        return self.returncode

    def send_signal(self, sig: int):
        if self.returncode is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:  # exited; its status is on its way from the server
                pass

    def terminate(self):
        self.send_signal(signal.SIGTERM)

    def kill(self):
        self.send_signal(signal.SIGKILL)


class ServerError(RuntimeError):
    """The server ended before it forked a command (e.g. one of its imports failed); the message ends with the last
    line of its stderr."""


class PreloadedCommands:
    """Starts toolkit commands as children of the server; the server starts (and imports `preload`) on first use."""

    def __init__(self, preload: tuple[str, ...] = PRELOAD):
        self._preload = tuple(preload)
        self._unavailable = False  # the server could not start: toolkit commands start fresh too
        self._server_errors: collections.deque[str] = collections.deque(maxlen=20)
        self._server: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._started: dict[int, threading.Event] = {}  # request id -> set once its pid is known
        self._pids: dict[int, int] = {}
        self._commands: dict[int, ForkedCommand] = {}
        self._early_exits: dict[int, int] = {}  # pid -> status that arrived before its ForkedCommand was made
        self._next_id = 0

    def start(self, command: list[str], log_path, env: dict[str, str], cwd) -> ForkedCommand | None:
        """`command` run with stdout and stderr appended to `log_path`; None if command[0] is not a toolkit command,
        or if the server could not start (the caller starts it as a plain subprocess)."""
        entry = toolkit_entry_point(os.path.basename(command[0]))
        if entry is None or self._unavailable:
            return None
        try:
            return self.start_entry(entry, command, log_path, env, cwd)
        except ServerError as e:  # once: every later command starts fresh, and logs the same error in its own log
            self._unavailable = True
            print(f"vega: {e}; every later command starts in a fresh interpreter", file=sys.stderr, flush=True)
            return None

    def start_entry(self, entry: str, argv: list[str], log_path, env: dict[str, str], cwd) -> ForkedCommand:
        """Run the function `entry` ('module:function', importable by the server) as a console script with
        `sys.argv = argv`."""
        with self._lock:
            if self._server is None or self._server.poll() is not None or self._server.stdin.closed:
                self._start_server()
            server = self._server
            self._next_id += 1
            request = self._next_id
            started = self._started[request] = threading.Event()
            message = {"id": request, "entry": entry, "argv": list(argv), "log": str(log_path)}
            message |= {"env": dict(env), "cwd": str(cwd)}
            self._server.stdin.write(json.dumps(message) + "\n")
            self._server.stdin.flush()
        # set once the server has forked it, or has died (its imports, under load, may take minutes)
        if not started.wait(SERVER_START_S) or request not in self._pids:
            # its last line (the exception, for a failed import); the whole of its stderr is on ours
            said = next((line.strip() for line in reversed(self._server_errors) if line.strip()), "no error printed")
            raise ServerError(f"the preloaded-command server ended before starting `{argv[0]}`: {said}")
        pid = self._pids.pop(request)
        with self._lock:
            proc = self._commands[pid] = ForkedCommand(pid)
            if pid in self._early_exits:
                proc._exit(self._early_exits.pop(pid))
            elif getattr(server, "reports_ended", False):  # it died between forking this one and now
                del self._commands[pid]
                threading.Thread(target=_wait_for_orphan, args=(proc,), daemon=True).start()
        return proc

    def close(self):
        """Let the server end (a running command goes on, and its status is still reported); idempotent. With no
        command running, waits for the server's exit (its CPU time then counts among this process's children)."""
        with self._lock:
            if self._server is None:
                return
            if not self._server.stdin.closed:
                self._server.stdin.close()
            running = bool(self._commands)
        if not running:
            self._server.wait(60)

    def _start_server(self):
        # without the caller's thread counts, so that a command given none gets a fresh interpreter's default
        env = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
        self._server = subprocess.Popen(
            [sys.executable, "-m", "vega_toolkit.launch.preloaded", *self._preload],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            env=env,
        )
        weakref.finalize(self, self._server.stdin.close)  # a dropped launcher's server ends instead of lingering
        threading.Thread(target=self._read_server, args=(self._server,), daemon=True).start()
        threading.Thread(target=self._echo_server_errors, args=(self._server,), daemon=True).start()

    def _echo_server_errors(self, server: subprocess.Popen):
        """The server's stderr passes through to ours; its last lines are kept for a ServerError's message."""
        for line in server.stderr:
            self._server_errors.append(line)
            sys.stderr.write(line)

    def _read_server(self, server: subprocess.Popen):
        for line in server.stdout:
            message = json.loads(line)
            if "id" in message:
                self._pids[message["id"]] = message["pid"]
                self._started.pop(message["id"]).set()
                continue
            with self._lock:
                proc = self._commands.pop(message["pid"], None)
                if proc is None:
                    self._early_exits[message["pid"]] = message["returncode"]
                else:
                    proc._exit(message["returncode"])
        for event in list(self._started.values()):  # the server died: no start waits for nothing
            event.set()
        with self._lock:  # ... and the commands it was running report no status: each ends when its process has gone
            server.reports_ended = True
            lost, self._commands = list(self._commands.values()), {}
        for proc in lost:
            threading.Thread(target=_wait_for_orphan, args=(proc,), daemon=True).start()


def _wait_for_orphan(proc: ForkedCommand, poll_s: float = 1.0):
    """A command whose server died: its status is lost; 1 once the process is gone (init reaps it)."""
    while True:
        try:
            os.kill(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(poll_s)
    print(f"vega: the preloaded-command server died; the status of pid {proc.pid} is unknown", file=sys.stderr)
    proc._exit(1)


# ---------------------------------------------------------------------------------------------------- the server's side
def serve(preload: tuple[str, ...] = PRELOAD):
    """Import `preload`, then fork one child per request line on stdin; report its pid and, later, its exit status
    on stdout (JSON lines). Once stdin closes, ends when its last child has (a reader that went away loses only the
    reports: the children run on, as a shell's would)."""
    for module in preload:
        importlib.import_module(module)
    requests, replies = sys.stdin.buffer.raw, sys.stdout
    wakeup_r, wakeup_w = os.pipe()
    os.set_blocking(wakeup_w, False)
    signal.set_wakeup_fd(wakeup_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so that SIGCHLD writes to the wakeup fd
    pending, listening, children = b"", True, True
    while listening or children:
        readable, _, _ = select.select([requests, wakeup_r] if listening else [wakeup_r], [], [], 1.0)
        if wakeup_r in readable:
            os.read(wakeup_r, 4096)
        if requests in readable:
            chunk = requests.read(1 << 16)
            listening = bool(chunk)  # closed: no new commands; the running ones are still waited for and reported
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                request = json.loads(line)
                pid = os.fork()
                if pid == 0:
                    os.close(wakeup_r)
                    os.close(wakeup_w)
                    _child(request)  # never returns
                replies.write(json.dumps({"id": request["id"], "pid": pid}) + "\n")
                replies.flush()
        children = _report_exits(replies)


def _report_exits(replies) -> bool:
    """Report every child that has exited; whether some are still running."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return False
        if pid == 0:
            return True
        replies.write(json.dumps({"pid": pid, "returncode": os.waitstatus_to_exitcode(status)}) + "\n")
        replies.flush()


def _child(request: dict):
    """In the forked child: what the console script would do in a fresh interpreter with this environment."""
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        for fd in (1, 2):
            os.dup2(log, fd)
        os.close(log)
        for stream in (sys.stdout, sys.stderr):  # the same objects: handlers made at import hold them
            stream.reconfigure(line_buffering=True, write_through=True)  # the log is read as the command runs
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        threads = request["env"].get("OMP_NUM_THREADS", "")
        if threads.isdigit() and int(threads) > 0:
            import torch

            torch.set_num_threads(int(threads))
        module, function = request["entry"].split(":")
        sys.argv = list(request["argv"])
        try:  # its name in ps, top and pgrep (which match the kernel's 15-character name): the command's, not python's
            with open(f"/proc/{os.getpid()}/comm", "w") as comm:
                comm.write(os.path.basename(sys.argv[0])[:15])
        except OSError:  # no procfs (not Linux): the name stays the server's
            pass
        code = _exit_status(getattr(importlib.import_module(module), function))
        for thread in threading.enumerate():
            if thread is not threading.main_thread() and not thread.daemon:
                thread.join()
        atexit._run_exitfuncs()
    except BaseException:  # noqa: BLE001 - the child must reach os._exit whatever happens
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001
                pass
        os._exit(code)


def _exit_status(main) -> int:
    """The status a console script's `sys.exit(main())` gives: SystemExit's int, 0 for None, 1 with a message."""
    try:
        result = main()
    except SystemExit as exit_:
        result = exit_.code
    except BaseException:  # noqa: BLE001 - printed as the interpreter would, status 1
        traceback.print_exc()
        return 1
    if result is None:
        return 0
    if isinstance(result, int):
        return result
    print(result, file=sys.stderr)
    return 1


if __name__ == "__main__":
    try:
        serve(tuple(sys.argv[1:]) or PRELOAD)
    except KeyboardInterrupt:  # ^C reaches the whole process group: the commands handle it themselves
        pass
