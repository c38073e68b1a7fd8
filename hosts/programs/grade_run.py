"""Run a participant's program in a node, fenced in: the grader never trusts submitted code.

grade_run.py exec CPU -- CMD...              drop to nobody, set limits, then exec CMD (servers that
                                             the orchestrator starts in the background)
grade_run.py run LIMIT CPU OUTDIR -- CMD...  the same fence, in a session of its own, for at most
                                             LIMIT seconds; afterwards the whole session is killed
                                             (leftover children too); prints one JSON line:
                                             {code, signal, timed_out, seconds, out, err}
grade_run.py wait PID KIND WHERE TIMEOUT     wait (bounded) until the kernel shows a listening
                                             socket (KIND tcp/udp PORT, or unix PATH), or PID
                                             exits; prints "listening", "exited" or "waiting"
grade_run.py sweep                           kill (by pid) every process of nobody in the node:
                                             only submitted programs run as nobody, and this
                                             catches what escaped its session (setsid, daemons)
grade_run.py sockets                         (run as nobody) the distinct sockets held open by
                                             nobody's processes, that is by the participant's
                                             program whatever it forked; prints JSON
                                             {total, by_pid}

The participant runs as nobody, so it cannot change routes or iptables, or kill hoplab's own
programs; CPU and file-size limits stop a spinning or disk-filling program even if the
orchestrator went away. The node's memory and pids limits bound the rest.
"""

import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import time

NOBODY = 65534
FILE_LIMIT = 16 << 20  # bytes a program may write to one file (its output included)
OUT_KEEP, ERR_KEEP = 65536, 4000


def fence(cpu: int) -> None:
    """Limits first (as root), then give up root for good."""
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT, FILE_LIMIT))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


def run(limit: float, cpu: int, outdir: str, cmd: list[str]) -> dict:
    out_path, err_path = os.path.join(outdir, "stdout"), os.path.join(outdir, "stderr")
    started = time.monotonic()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            cwd="/tmp",
            start_new_session=True,
            preexec_fn=lambda: fence(cpu),
            env={"PATH": "/usr/bin:/bin", "PYTHONUNBUFFERED": "1", "HOME": "/tmp"},
        )
    timed_out = False
    try:
        proc.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        timed_out = True
    seconds = time.monotonic() - started
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # the program, or what it left running
    proc.wait()
    code = proc.returncode
    with open(out_path, "rb") as f:
        text_out = f.read(OUT_KEEP).decode(errors="replace")
    with open(err_path, "rb") as f:
        f.seek(max(0, os.path.getsize(err_path) - ERR_KEEP))
        text_err = f.read().decode(errors="replace")
    return {
        "code": None if timed_out else code,
        "signal": signal.Signals(-code).name if code < 0 and not timed_out else None,
        "timed_out": timed_out,
        "seconds": round(seconds, 3),
        "out": text_out,
        "err": text_err,
    }


def sweep() -> list[int]:
    killed = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.stat(f"/proc/{pid}").st_uid == NOBODY:
                os.kill(int(pid), signal.SIGKILL)
                killed.append(int(pid))
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return killed


def sockets() -> dict:
    """Socket inodes in /proc/*/fd of every process of nobody, counted once each."""
    seen: set[str] = set()
    by_pid: dict[str, int] = {}
    me = str(os.getpid())
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if pid == me:
            continue
        try:
            if os.stat(f"/proc/{pid}").st_uid != NOBODY:
                continue
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:  # gone, or not ours to read
            continue
        socks = set()
        for fd in fds:
            with contextlib.suppress(OSError):  # closed meanwhile
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:"):
                    socks.add(link)
        if socks:
            by_pid[pid] = len(socks)
            seen |= socks
    return {"total": len(seen), "by_pid": by_pid}


def listening(kind: str, where: str) -> bool:
    """Read the kernel's socket tables directly: no ss fork per poll."""
    if kind == "unix":
        with open("/proc/net/unix") as f:
            # Flags 00010000 is __SO_ACCEPTCON: a listening socket; the path is the last field.
            return any(
                line.split()[-1] == where and line.split()[3] == "00010000"
                for line in f.readlines()[1:]
                if len(line.split()) >= 8
            )
    table, state = ("/proc/net/tcp", "0A") if kind == "tcp" else ("/proc/net/udp", "07")
    port = f"{int(where):04X}"
    with open(table) as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1].rsplit(":", 1)[1] == port and fields[3] == state:
                return True
    return False


def wait(pid: int, kind: str, where: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        if listening(kind, where):
            return "listening"
        if not os.path.exists(f"/proc/{pid}") or _zombie(pid):
            return "exited"
        if time.monotonic() > deadline:
            return "waiting"
        time.sleep(0.02)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def main() -> None:
    mode = sys.argv[1]
    if mode == "sweep":
        print(json.dumps({"killed": sweep()}))
        return
    if mode == "sockets":
        print(json.dumps(sockets()))
        return
    if mode == "wait":
        print(wait(int(sys.argv[2]), sys.argv[3], sys.argv[4], float(sys.argv[5])))
        return
    cmd = sys.argv[sys.argv.index("--") + 1 :]
    if mode == "exec":
        fence(int(sys.argv[2]))
        os.execvpe(cmd[0], cmd, {"PATH": "/usr/bin:/bin", "PYTHONUNBUFFERED": "1", "HOME": "/tmp"})
    limit, cpu, outdir = float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    print(json.dumps(run(limit, cpu, outdir, cmd)))


if __name__ == "__main__":
    main()
