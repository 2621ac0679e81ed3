"""A local forwarding proxy that adds one header to requests lacking it, so a client that
cannot send our Bearer key (the MCP conformance suite) reaches `mcp-http`. Every other
header, `Host` and `Origin` included, goes through unchanged.

    header_proxy.py <listen port> <target base URL> "<Header>: <value>"
"""
import http.client
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

listen, target, header = int(sys.argv[1]), urllib.parse.urlsplit(sys.argv[2]), sys.argv[3]
add_name, add_value = (part.strip() for part in header.split(":", 1))
HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "proxy-connection"}


class Forward(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def forward(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else None
        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
        conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        for name, value in self.headers.items():
            if name.lower() not in HOP:
                conn.putheader(name, value)
        if add_name.lower() not in (n.lower() for n in self.headers.keys()):
            conn.putheader(add_name, add_value)
        conn.endheaders(body)
        resp = conn.getresponse()
        data = resp.read()
        self.send_response(resp.status)
        for name, value in resp.getheaders():
            if name.lower() not in HOP and name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        conn.close()

    do_GET = do_POST = do_DELETE = forward

    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        # A client that closes its connection (the suite does, between requests) is normal.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


Server(("127.0.0.1", listen), Forward).serve_forever()
