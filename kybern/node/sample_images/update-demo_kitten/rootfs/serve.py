"""A tiny static web server: the default command of kybern's sample images.

Serves the current directory over HTTP on $PORT (default 80, like nginx). Several
replicas share the host network in the process runtime, so the socket is opened
with SO_REUSEPORT and the kernel spreads connections between them.
"""

import http.server
import os
import socket
import sys


class Server(http.server.ThreadingHTTPServer):
    def server_bind(self) -> None:
        if hasattr(socket, "SO_REUSEPORT"):
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()


class Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, fmt: str, *args: object) -> None:
        # access log on stdout, as nginx images do, so `kubectl logs` shows requests
        sys.stdout.write(f"{self.address_string()} - - [{self.log_date_time_string()}] {fmt % args}\n")
        sys.stdout.flush()


def main() -> None:
    port = int(os.environ.get("PORT", "80"))
    try:
        httpd = Server(("", port), Handler)
    except PermissionError:
        print(f"serve.py: cannot listen on port {port}: permission denied "
              f"(ports below 1024 need root; set env PORT to a higher port)", file=sys.stderr)
        sys.exit(1)
    except OSError as e:
        print(f"serve.py: cannot listen on port {port}: {e}", file=sys.stderr)
        sys.exit(1)
    print(f"serving {os.getcwd()} on port {port}", flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
