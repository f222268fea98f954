"""A local HTTP server that serves checkpoint bytes to the download tests
(the ``checkpoint_server`` fixture)."""
import http.server
import threading
import time
import urllib.parse


class _FileHandler(http.server.BaseHTTPRequestHandler):

    def do_GET(self):  # noqa: N802 (http.server's name)
        server = self.server
        path = urllib.parse.urlparse(self.path).path
        server.requests.append(path)
        time.sleep(server.delay_s)
        body = server.files.get(path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header('Content-Type', 'application/octet-stream')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        cut = server.truncate.get(path)
        self.wfile.write(body if cut is None else body[:cut])
        self.close_connection = True

    def log_message(self, *args):
        pass


class CheckpointServer:
    """A real HTTP server on 127.0.0.1 (a free port) serving bytes by path.

    ``files[path] = bytes`` serves them (other paths: 404);
    ``truncate[path] = n`` sends the full ``Content-Length`` but only ``n``
    bytes; ``delay_s`` waits before each answer; ``requests`` lists the
    requested paths.
    """

    def __init__(self):
        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0),
                                                     _FileHandler)
        self.httpd.files, self.httpd.truncate = {}, {}
        self.httpd.requests, self.httpd.delay_s = [], 0.0
        self.files, self.truncate = self.httpd.files, self.httpd.truncate
        self.requests = self.httpd.requests
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       daemon=True)
        self.thread.start()

    @property
    def delay_s(self) -> float:
        return self.httpd.delay_s

    @delay_s.setter
    def delay_s(self, value: float) -> None:
        self.httpd.delay_s = value

    def url(self, path: str) -> str:
        return f'http://127.0.0.1:{self.httpd.server_address[1]}{path}'

    def serve_file(self, path: str, filename) -> str:
        """Serve a local file's bytes at ``path``; returns its URL."""
        with open(filename, 'rb') as f:
            self.files[path] = f.read()
        return self.url(path)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()
