"""A tiny Chrome DevTools Protocol client for headless Chromium (Python stdlib only).

It talks to the browser over `--remote-debugging-pipe` instead of the usual websocket on
`--remote-debugging-port`: Chromium reads commands from its fd 3 and writes replies and events
to its fd 4, each message one JSON object followed by a NUL byte. So no websocket library is
needed, and there is no TCP port to pick, to collide with another run, or to be reachable (or
not) from inside a network namespace.

    from cdp import Browser
    with Browser(netns="client") as b:            # netns: run under `ip netns exec NETNS`
        b.open("http://10.8.0.11/")                # new tab, waits for the load event
        b.wait_for("document.title == 'ok'", 10, "the title")
        print(b.eval("document.body.innerText"))
        b.screenshot("/tmp/page.png")

Every read has a deadline (select on the pipe); events that arrive while waiting for a reply
are kept in `Browser.events` (the last 1000). A reply with "error" raises CDPError; a browser
that exits raises BrowserExited with the tail of its stderr.
"""

import base64
import collections
import contextlib
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time

CHROMIUM = "/usr/bin/chromium"


class CDPError(Exception):
    """The browser answered a command with an error, or JavaScript threw."""


class BrowserExited(CDPError):
    """Chromium exited (or closed its pipe) when it should not have."""


class Browser:
    def __init__(self, netns=None, width=1200, height=900, timeout=30, binary=CHROMIUM):
        self.timeout = timeout
        self.session = None
        self.events = collections.deque(maxlen=1000)
        self._next_id = 0
        self._buf = b""
        self._tmp = tempfile.mkdtemp(prefix="cdp-")
        self._log = open(os.path.join(self._tmp, "chromium.log"), "w+b")
        cmd = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--remote-debugging-pipe", f"--user-data-dir={self._tmp}/profile",
               f"--window-size={width},{height}", "about:blank"]
        if netns:
            cmd = ["ip", "netns", "exec", netns] + cmd
        cmd_r, self._wfd = os.pipe()  # we write commands, the child reads them on its fd 3
        self._rfd, out_w = os.pipe()  # the child writes on its fd 4, we read

        def child_fds():
            # Move both ends above 4 first, so that dup2 cannot clobber one with the other.
            a = fcntl.fcntl(cmd_r, fcntl.F_DUPFD, 10)
            b = fcntl.fcntl(out_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)  # dup2'd fds are inheritable: they survive exec
            os.dup2(b, 4)

        try:
            # close_fds=False, or subprocess would close 3 and 4 after child_fds. Python's own
            # fds are non-inheritable (PEP 446), so only fds 0-4 reach Chromium anyway.
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
                env=dict(os.environ, HOME=self._tmp), close_fds=False,
                preexec_fn=child_fds, start_new_session=True)
        except BaseException:
            self._cleanup()
            raise
        finally:
            os.close(cmd_r)
            os.close(out_w)
        try:
            self.version = self.send("Browser.getVersion")  # the pipe works, browser is up
        except BaseException:
            self.close()
            raise

    def _exited(self, why):
        self._log.flush()
        self._log.seek(0)
        tail = self._log.read().decode(errors="replace")[-3000:]
        return BrowserExited(f"chromium {why} (exit status {self.proc.poll()}); "
                             f"its output ends with:\n{tail}")

    def _read_message(self, deadline, what):
        """The next message from the browser, or TimeoutError (naming `what`) at `deadline`."""
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"chromium: no {what} in time")
            if not select.select([self._rfd], [], [], left)[0]:
                continue
            chunk = os.read(self._rfd, 1 << 20)
            if not chunk:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(5)
                raise self._exited("closed its pipe")
            self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def _write(self, data, deadline):
        while data:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([], [self._wfd], [], left)[1]:
                raise TimeoutError("chromium does not read its pipe")
            try:
                data = data[os.write(self._wfd, data):]
            except BrokenPipeError:
                raise self._exited("exited") from None

    def send(self, method, params=None, session=None, timeout=None):
        """Send one command and return its result; events met meanwhile go to self.events."""
        deadline = time.monotonic() + (timeout or self.timeout)
        self._next_id += 1
        msg = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self._write(json.dumps(msg).encode() + b"\0", deadline)
        while True:
            reply = self._read_message(deadline, f"reply to {method}")
            if reply.get("id") != self._next_id:
                self.events.append(reply)
            elif "error" in reply:
                err = reply["error"]
                raise CDPError(f"{method}: {err.get('message')} {err.get('data', '')}".rstrip())
            else:
                return reply.get("result", {})

    def wait_event(self, method, session=None, timeout=None):
        """Wait for (and consume) an event `method` of `session`, buffered or new."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            for ev in self.events:
                if ev.get("method") == method and ev.get("sessionId") == session:
                    self.events.remove(ev)
                    return ev.get("params", {})
            self.events.append(self._read_message(deadline, f"{method} event"))

    def open(self, url, timeout=None):
        """Open `url` in a new tab, which eval/wait_for/screenshot then use; wait for its load."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget",
                                 {"targetId": target, "flatten": True})["sessionId"]
        self.send("Page.enable", session=self.session)
        self.events = collections.deque((e for e in self.events
                                         if e.get("sessionId") != self.session), maxlen=1000)
        nav = self.send("Page.navigate", {"url": url}, self.session, timeout)
        if nav.get("errorText"):
            raise CDPError(f"navigating to {url}: {nav['errorText']}")
        self.wait_event("Page.loadEventFired", self.session, timeout)

    def eval(self, expr, timeout=None):
        """Evaluate a JavaScript expression in the page (promises awaited), return its value."""
        r = self.send("Runtime.evaluate", {"expression": expr, "returnByValue": True,
                                           "awaitPromise": True}, self.session, timeout)
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            raise CDPError(f"JavaScript error in {expr!r}: "
                           f"{d.get('exception', {}).get('description') or d.get('text')}")
        return r["result"].get("value")

    def wait_for(self, expr, limit=None, what=None):
        """Poll eval(expr) every 100 ms until it is truthy (and return it), at most `limit` s."""
        deadline = time.monotonic() + (limit or self.timeout)
        while True:
            value = self.eval(expr)
            if value:
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError(f"timed out after {limit or self.timeout}s waiting for "
                                   f"{what or expr}; last value: {value!r}")
            time.sleep(0.1)

    def screenshot(self, path, timeout=None):
        """Write a PNG of the whole page (beyond the viewport) to `path`."""
        r = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True},
                      self.session, timeout)
        with open(path, "wb") as f:
            f.write(base64.b64decode(r["data"]))

    def close(self):
        """Ask the browser to quit, wait up to 10 s, then kill what is left of it."""
        proc = getattr(self, "proc", None)
        if proc and proc.poll() is None:
            with contextlib.suppress(CDPError, TimeoutError, OSError, subprocess.TimeoutExpired):
                self.send("Browser.close", timeout=5)
                proc.wait(10)
        if proc:  # chromium has its own session: this reaches only its zygotes and renderers
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        self._cleanup()

    def _cleanup(self):
        for fd in ("_wfd", "_rfd"):
            if getattr(self, fd, None) is not None:
                os.close(getattr(self, fd))
                setattr(self, fd, None)
        self._log.close()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
