"""The L7 service of a lab backend (stands in for HAProxy): HTTP/1.0 on :80, on every
address or on the one given after the name (argv[2]).

GET /health -> 200 (the local check of vipd's agent); GET anything else -> 200 with the
backend's name; a connection that starts with "PING" is long-lived: each "PING" line gets
the backend's name back, until the client closes.
"""

import socketserver
import sys

NAME = sys.argv[1].encode()


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        first = self.rfile.readline()
        if first.startswith(b"PING"):
            while first:
                self.wfile.write(NAME + b"\n")
                first = self.rfile.readline()
            return
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass
        body = b"ok\n" if first.startswith(b"GET /health") else NAME + b"\n"
        self.wfile.write(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


Server((sys.argv[2] if len(sys.argv) > 2 else "0.0.0.0", 80), Handler).serve_forever()
