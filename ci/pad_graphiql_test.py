#!/usr/bin/env python3
"""The platform's GraphiQL page in headless Chromium.

Usage: python3 ci/pad_graphiql_test.py GRAPHQL_URL SCREENSHOT.png [CORS_PORT OTHER_PORT]

Loads GraphiQL from the gateway (every script and style it needs is served
by the gateway: the browser is offline except for it), opens the Docs pane
and checks that the schema loaded (the introspection query GraphiQL sends on
load was answered: the pane shows the root types Query and Mutation, not
"Error fetching schema"), runs the default query and waits for the greeting
in the response pane; then types a registerUser mutation and a query into
the editor, runs each and checks the answers. Saves a screenshot and exits 0; on any failure, or any console
error or uncaught page exception, prints what the page showed and exits 1.

With CORS_PORT and OTHER_PORT (the gateway started with `--cors-origin
http://127.0.0.1:CORS_PORT`): serves a blank page on each port and, from
each, has Chromium's own fetch() log in to the gateway (a JSON POST with
credentials, so the browser sends a preflight first): from CORS_PORT the
answer must be readable, the access token and the exposed
`x-refresh-token` header with it; from OTHER_PORT the browser must refuse
it (fetch fails).

Uses the system Chromium ($CHROMIUM, default /usr/bin/chromium).
"""
import http.server
import os
import sys
import threading
from urllib.parse import urlparse

from playwright.sync_api import sync_playwright

TIMEOUT_MS = 30_000


class Failure(Exception):
    pass


def response_text(page):
    return page.locator(".graphiql-response").inner_text(timeout=2000)


def run(page, query, want):
    if query is not None:
        page.locator(".graphiql-query-editor .CodeMirror").first.click()
        page.keyboard.press("Control+A")
        page.keyboard.press("Delete")
        page.keyboard.insert_text(query)
    page.locator(".graphiql-execute-button").click()
    try:
        page.wait_for_function(
            "w => (document.querySelector('.graphiql-response') || {}).innerText?.includes(w)",
            arg=want,
            timeout=TIMEOUT_MS,
        )
    except Exception:
        raise Failure(f"no {want!r} in the response pane; it shows: {response_text(page)!r}")


def check_schema(page):
    """The Docs pane shows the schema: GraphiQL's introspection worked."""
    docs = page.locator(".graphiql-doc-explorer")
    if docs.count() == 0:
        page.locator('button[aria-label="Show Documentation Explorer"]').click()
    try:
        page.wait_for_selector(
            ".graphiql-doc-explorer-root-type, .graphiql-doc-explorer-error",
            timeout=TIMEOUT_MS,
        )
    except Exception:
        raise Failure(f"the Docs pane shows neither the schema nor an error: {docs.inner_text(timeout=2000)!r}")
    text = docs.inner_text(timeout=2000)
    if page.locator(".graphiql-doc-explorer-error").count() > 0 or "Error fetching schema" in text:
        raise Failure(
            f"the Docs pane says {text!r}: GraphiQL's introspection query was refused; "
            f"the response pane shows: {response_text(page)!r}"
        )
    for want in ["query: Query", "mutation: Mutation"]:
        if want not in " ".join(text.split()):
            raise Failure(f"the Docs pane does not show {want!r}: {text!r}")
    # Closed again: the screenshot shows the editor and the response.
    page.locator('button[aria-label="Hide Documentation Explorer"]').click()


LOGIN_JS = """async (url) => {
  try {
    const r = await fetch(url, {
      method: "POST",
      credentials: "include",
      headers: {"content-type": "application/json"},
      body: JSON.stringify({query: 'mutation { login(input: {email: "graphiql@example.com", password: "correct horse"}) }'}),
    });
    const body = await r.json();
    return {ok: true, status: r.status, token: body.data && body.data.login,
            errors: body.errors || null, refresh: r.headers.get("x-refresh-token")};
  } catch (e) {
    return {ok: false, error: String(e)};
  }
}"""


def serve_blank(port):
    """A blank page on 127.0.0.1:port (another origin than the gateway's)."""

    class Blank(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"<!doctype html><title>another origin</title>"
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Blank)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def cross_origin(browser, url, allowed, other):
    """fetch() from a page of `allowed` reads the login's answer and its
    x-refresh-token; from `other` the browser refuses it."""
    servers = [serve_blank(allowed), serve_blank(other)]
    try:
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{allowed}/", timeout=TIMEOUT_MS)
        got = page.evaluate(LOGIN_JS, url)
        if not got.get("ok") or got.get("status") != 200 or not got.get("token"):
            raise Failure(f"a login from the allowed origin http://127.0.0.1:{allowed} failed: {got}")
        if not got.get("refresh"):
            raise Failure(f"the allowed origin cannot read x-refresh-token (not exposed): {got}")
        page.goto(f"http://127.0.0.1:{other}/", timeout=TIMEOUT_MS)
        got = page.evaluate(LOGIN_JS, url)
        if got.get("ok"):
            raise Failure(f"a page of http://127.0.0.1:{other}, not a --cors-origin, read the gateway's answer: {got}")
        page.close()
        return f"cross-origin login read from :{allowed}, refused from :{other} ({got['error']})"
    finally:
        for s in servers:
            s.shutdown()


def main():
    url, shot = sys.argv[1], sys.argv[2]
    cors = (int(sys.argv[3]), int(sys.argv[4])) if len(sys.argv) > 4 else None
    origin = urlparse(url).netloc
    problems = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"),
            args=["--no-sandbox"],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 800})
        page.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
        page.on("pageerror", lambda e: problems.append(f"exception: {e}"))
        # Offline but for the gateway: any other request fails the test.
        outside = []

        def route(r):
            if urlparse(r.request.url).netloc == origin:
                r.continue_()
            else:
                outside.append(r.request.url)
                r.abort()

        page.route("**/*", route)
        try:
            page.goto(url, timeout=TIMEOUT_MS)
            page.wait_for_selector(".graphiql-execute-button", timeout=TIMEOUT_MS)
            check_schema(page)
            run(page, None, "Hello from the bookstore")
            run(
                page,
                'mutation { registerUser(input: {email: "graphiql@example.com", password: "correct horse"}) }',
                '"registerUser": "1"',
            )
            run(page, "{ hello categories { id name } }", '"categories": []')
            if outside:
                raise Failure(f"the page asked outside the gateway: {outside}")
            if problems:
                raise Failure("console errors or page exceptions")
            page.screenshot(path=shot)
            cors_said = cross_origin(browser, url, *cors) if cors else None
        except Failure as e:
            print(f"FAIL: {e}", file=sys.stderr)
            for pr in problems:
                print(f"  {pr}", file=sys.stderr)
            print("GraphiQL page: 0 passed, 1 failed")
            return 1
        finally:
            browser.close()
    print(f"GraphiQL page: 1 passed (schema in the Docs pane, default query, a typed mutation and query; screenshot {shot})")
    if cors_said:
        print(f"CORS: 1 passed ({cors_said})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
