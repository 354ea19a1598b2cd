"""html_site.py - a web site that is not an API: every GET answers an HTML
page (200 for any path, or the status given with --status).

For the connectors' `check`: an api_url pointing at a web site (a company
page, a login portal, a proxy's error page) must be reported as "not the API"
rather than as a missing scope or key.

    html_site.py --port 0 --port-file F [--status N]

The server plumbing is httpbase.py. Standard library only.
"""

import argparse
import sys

import httpbase

PAGE = (b"<!DOCTYPE html>\n<html><head><title>Welcome</title></head>"
        b"<body><h1>Welcome to our site</h1></body></html>\n")


class Handler(httpbase.Handler):
    server_version = "html-site/1"
    methods = ("GET", "POST")

    def handle_request(self):
        self.read_body()
        self.send_bytes(self.app, PAGE, content_type="text/html; charset=utf-8")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    httpbase.add_server_arguments(p)
    p.add_argument("--status", type=int, default=200)
    a = p.parse_args()
    srv = httpbase.Server((a.host, a.port), Handler, a.status, tls=(a.tls_cert, a.tls_key))
    return httpbase.serve(srv, a.port_file, "html-site: listening on " + srv.url)


if __name__ == "__main__":
    sys.exit(main())
