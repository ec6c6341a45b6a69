"""A fake ``runc`` for tests that must not need root (STYLE §4.10: inject the runtime).

:func:`install` writes an executable ``runc`` into a directory; give its path to the shim
as ``BinaryName`` in the runc options (or ``$PYCONTAINERD_RUNC``). It keeps state under
``--root`` like runc and runs the spec's ``process.args`` as an ordinary child process —
no namespaces, no cgroups, no mounts:

- ``create``: fork the "init", which blocks on ``<root>/<id>/exec.fifo`` until ``start``
  (as runc's exec fifo does), then execs the args with runc's stdio; write ``--pid-file``;
- ``start``: open the exec fifo for writing (releases the init);
- ``exec --detach --pid-file P --process JSON``: fork the process at once;
- ``kill [--all] ID SIG``, ``delete [--force] ID``, ``pause``/``resume`` (SIGSTOP/SIGCONT),
  ``ps --format json``, ``update --resources -``, ``state``.

Errors go to ``--log`` as runc's JSON lines and exit 1. ``$FAKE_RUNC_FAIL=<subcommand>``
makes that subcommand fail (``FAKE_RUNC_FAIL=create``), to test error paths.
"""

from __future__ import annotations

import os
import stat
import sys

SCRIPT = r'''
import json, os, signal, sys, time

def main(argv):
    root, log = "/run/fake-runc", ""
    while argv and argv[0].startswith("--"):
        flag = argv.pop(0)
        if flag in ("--root", "--log", "--log-format"):
            value = argv.pop(0)
            if flag == "--root": root = value
            if flag == "--log": log = value
    cmd, args = argv[0], argv[1:]
    def fail(msg):
        if log:
            with open(log, "a") as f:
                f.write(json.dumps({"level": "error", "msg": msg, "time": "now"}) + "\n")
        sys.stderr.write(msg + "\n")
        sys.exit(1)
    if os.environ.get("FAKE_RUNC_FAIL") == cmd:
        fail(f"fake runc: {cmd} failed on purpose")
    opts, pos = {}, []
    it = iter(args)
    for a in it:
        if a in ("--bundle", "--pid-file", "--console-socket", "--process", "--resources", "--format"):
            opts[a] = next(it)
        elif a.startswith("--"):
            opts[a] = True
        else:
            pos.append(a)
    cid = pos[0]
    d = os.path.join(root, cid)
    sfile = os.path.join(d, "state.json")
    def load():
        try:
            with open(sfile) as f: return json.load(f)
        except FileNotFoundError:
            fail(f"container {cid} does not exist")
    def save(st):
        with open(sfile + ".tmp", "w") as f: json.dump(st, f)
        os.rename(sfile + ".tmp", sfile)
    def alive(pid):
        try:
            with open(f"/proc/{pid}/stat") as f: return f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError: return False
    def spawn(proc_args, wait_fifo):
        pid = os.fork()
        if pid == 0:
            try:
                os.setsid()
                if wait_fifo:
                    with open(wait_fifo, "rb") as f: f.read(1)
                os.execvp(proc_args[0], proc_args)
            finally:
                os._exit(127)
        return pid
    if cmd == "create":
        if os.path.exists(d): fail(f"container with id exists: {cid}")
        os.makedirs(d)
        with open(os.path.join(opts["--bundle"], "config.json")) as f: spec = json.load(f)
        fifo = os.path.join(d, "exec.fifo")
        os.mkfifo(fifo)
        pid = spawn(spec["process"]["args"], fifo)
        save({"pid": pid, "status": "created", "execs": [], "bundle": opts["--bundle"]})
        with open(opts["--pid-file"], "w") as f: f.write(str(pid))
    elif cmd == "start":
        st = load()
        fd = os.open(os.path.join(d, "exec.fifo"), os.O_WRONLY)
        os.write(fd, b"0"); os.close(fd)
        st["status"] = "running"; save(st)
    elif cmd == "exec":
        st = load()
        with open(opts["--process"]) as f: proc = json.load(f)
        if not alive(st["pid"]): fail("cannot exec in a stopped container")
        pid = spawn(proc["args"], None)
        st["execs"].append(pid); save(st)
        with open(opts["--pid-file"], "w") as f: f.write(str(pid))
    elif cmd == "kill":
        st = load()
        sig = int(pos[1]) if len(pos) > 1 else 15
        pids = [st["pid"]] + (st["execs"] if opts.get("--all") else [])
        if not alive(st["pid"]) and not opts.get("--all"): fail("container not running")
        for p in pids:
            try: os.kill(p, sig)
            except ProcessLookupError: pass
    elif cmd == "delete":
        if not os.path.exists(sfile):
            fail(f"container {cid} does not exist")
        st = load()
        if alive(st["pid"]) and st["status"] == "running" and not opts.get("--force"):
            fail("cannot delete container that is not stopped: running")
        for p in [st["pid"]] + st["execs"]:
            try: os.kill(p, 9)
            except ProcessLookupError: pass
        for name in os.listdir(d): os.unlink(os.path.join(d, name))
        os.rmdir(d)
    elif cmd == "ps":
        st = load()
        print(json.dumps([p for p in [st["pid"]] + st["execs"] if alive(p)]))
    elif cmd in ("pause", "resume"):
        st = load()
        for p in [st["pid"]] + st["execs"]:
            try: os.kill(p, signal.SIGSTOP if cmd == "pause" else signal.SIGCONT)
            except ProcessLookupError: pass
        st["status"] = "paused" if cmd == "pause" else "running"; save(st)
    elif cmd == "update":
        json.loads(sys.stdin.read() or "{}")
        load()
    elif cmd == "state":
        st = load()
        print(json.dumps({"id": cid, "pid": st["pid"], "status": st["status"]}))
    else:
        fail(f"unknown command {cmd}")

main(sys.argv[1:])
'''


def install(directory: str) -> str:
    """Write the fake ``runc`` into ``directory``; returns its path."""
    path = os.path.join(directory, "runc")
    with open(path, "w") as f:
        f.write(f"#!{sys.executable} -S\n" + SCRIPT)
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path
