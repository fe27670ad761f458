"""Reading the server-rendered pages in tests: elements by id, form inputs, signup and sign-in round trips."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import httpx

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
PASSWORD = "correct horse battery"


class Page(HTMLParser):
    """Text of every element with an id, attributes of inputs by name, labels by ``for``."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.text: dict[str, str] = {}
        self.inputs: dict[str, dict[str, str]] = {}
        self.labels: dict[str, str] = {}
        self.links: list[str] = []
        self._open: list[tuple[str, str | None]] = []
        self._label_for: str | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        if tag == "input" and "name" in attributes:
            self.inputs[attributes["name"]] = attributes
        if tag == "a" and "href" in attributes:
            self.links.append(attributes["href"])
        if tag == "label":
            self._label_for = attributes.get("for")
        if tag in VOID:
            return
        element_id = attributes.get("id")
        if element_id:
            self.text.setdefault(element_id, "")
        self._open.append((tag, element_id))

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self._label_for = None
        for index in range(len(self._open) - 1, -1, -1):
            if self._open[index][0] == tag:
                del self._open[index:]
                break

    def handle_data(self, data: str) -> None:
        for _, element_id in self._open:
            if element_id:
                self.text[element_id] += data
        if self._label_for:
            self.labels[self._label_for] = self.labels.get(self._label_for, "") + data

    def value(self, name: str) -> str:
        """The ``value`` attribute of input ``name``."""
        return self.inputs[name].get("value", "")

    def said(self, element_id: str) -> str:
        """The whitespace-normalized text of element ``element_id`` ('' when absent)."""
        return " ".join(self.text.get(element_id, "").split())


def new_client(base_url: str, source: str | None = None) -> httpx.Client:
    """A browser-like client (own cookie jar, no redirects followed).

    ``source`` is a loopback address (``127.0.0.N``) to connect from, so that per-address rate
    limits of one test do not touch the others.
    """
    transport = httpx.HTTPTransport(local_address=source) if source else None
    return httpx.Client(base_url=base_url, timeout=30, follow_redirects=False, transport=transport)


def form_token(client: httpx.Client) -> str:
    """Load the signup form (sets the CSRF cookie) and return its token."""
    response = client.get("/signup")
    assert response.status_code == 200, response.text
    return Page(response.text).value("csrf_token")


def post_signup(
    client: httpx.Client, email: str, workspace: str, password: str = PASSWORD, token: str | None = None
) -> httpx.Response:
    """Submit the signup form as a browser would."""
    data = {"email": email, "workspace": workspace, "password": password}
    data["csrf_token"] = form_token(client) if token is None else token
    return client.post("/signup", data=data)


def verification_link(client: httpx.Client, email: str) -> str:
    """The verification link of the newest mail to ``email``, read from the dev mailbox."""
    response = client.get("/dev/mail", params={"to": email})
    assert response.status_code == 200, response.text
    links = [link for link in Page(response.text).links if "/signup/verify?token=" in link]
    assert links, response.text
    return links[0].replace("&amp;", "&")


def path_of(url: str) -> str:
    """Path and query of an absolute URL (mail links name the public host)."""
    return re.sub(r"^https?://[^/]+", "", url)


def session_cookie(response: httpx.Response) -> str | None:
    """The ``canopy_session`` value a response sets (None when it sets none)."""
    for header in response.headers.get_list("set-cookie"):
        name, _, rest = header.partition("=")
        if name == "canopy_session":
            return rest.split(";", 1)[0].strip('"')
    return None


def sign_up_and_verify(client: httpx.Client, email: str, workspace: str, password: str = PASSWORD) -> str:
    """Sign up, follow the mailed link (which signs ``client`` in) and return the progress page path."""
    assert post_signup(client, email, workspace, password).status_code == 303
    response = client.get(path_of(verification_link(client, email)))
    assert response.status_code == 303, response.text
    location: str = response.headers["location"]
    assert location.endswith("/progress")
    return location


def post_login(
    client: httpx.Client, email: str, password: str = PASSWORD, next_path: str | None = None, token: str | None = None
) -> httpx.Response:
    """Submit the sign-in form as a browser would (a page is loaded first for the CSRF cookie and token)."""
    data = {"email": email, "password": password, "csrf_token": form_token(client) if token is None else token}
    if next_path is not None:
        data["next"] = next_path
    return client.post("/login", data=data)
