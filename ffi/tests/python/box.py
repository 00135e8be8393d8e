"""A real imboxd for the SDK's tests: the binary cargo built, a temporary
data directory, every listener on 127.0.0.1 port 0 (the kernel picks; the
pairing URI carries the ports imboxd got), invites made with `imboxd invite
create --uri` over the running daemon's control socket."""

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
TARGET_DIR = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")


def imboxd_binary():
    path = os.path.join(TARGET_DIR, "debug", "imboxd")
    if not os.path.exists(path):
        raise SystemExit(f"{path} is missing: run `cargo build -p imboxd` first (make test-sdk does)")
    return path


class Box:
    """imboxd running until stop()."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="imbox-sdk-")
        self.data = os.path.join(self.dir, "data")
        self.config = os.path.join(self.dir, "empty.toml")
        with open(self.config, "w"):
            pass
        run = os.path.join(self.dir, "run")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "IMBOX_HTTPS__LISTEN": "127.0.0.1:0",
            "IMBOX_QUIC__LISTEN": "127.0.0.1:0",
            "IMBOX_LOG__LEVEL": "info",
            # Several tests log in from one address within a minute.
            "IMBOX_LIMITS__LOGIN_ATTEMPTS_PER_MINUTE": "1000",
            "IMBOX_SETUP__STORAGE_STATUS": os.path.join(run, "storage.json"),
            "IMBOX_SETUP__STORAGE_PROGRESS": os.path.join(run, "storage-progress"),
        }
        self.log = []
        self.quic_listening = threading.Event()
        self.child = subprocess.Popen(
            [imboxd_binary(), "--config", self.config, "--data-dir", self.data, "run", "--listen", "127.0.0.1:0"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read_log, daemon=True).start()
        # Readiness is the log line, not a delay: imboxd prints it once
        # every listener is bound.
        if not self.quic_listening.wait(60) or self.child.poll() is not None:
            self.stop()
            raise RuntimeError("imboxd did not start:\n" + "".join(self.log))

    def _read_log(self):
        for line in self.child.stdout:
            self.log.append(line)
            if "listening on quic://" in line:
                self.quic_listening.set()

    def imboxd(self, *args, stdin=None):
        done = subprocess.run(
            [imboxd_binary(), "--config", self.config, "--data-dir", self.data, *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"imboxd {' '.join(args)} failed: {done.stderr}")
        return done.stdout.strip()

    def invite(self):
        """A pairing URI with a one-time invite, as the invite's QR code carries."""
        return self.imboxd("invite", "create", "--uri")

    def stop(self):
        if self.child.poll() is None:
            self.child.send_signal(signal.SIGTERM)
            try:
                self.child.wait(20)
            except subprocess.TimeoutExpired:
                self.child.kill()
                self.child.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is not None:
            print("imboxd's log:\n" + "".join(self.log[-60:]))
        self.stop()


def elapsed_ms(since):
    return (time.monotonic() - since) * 1000
