"""Over HTTP against a running control plane: a verification link signs a browser in once, and the
signup form does not tell whether an email is registered."""

from __future__ import annotations

import uuid

from tests.web.conftest import Server
from tests.web.pages import (
    PASSWORD,
    Page,
    new_client,
    path_of,
    post_login,
    post_signup,
    session_cookie,
    verification_link,
)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_a_used_verification_link_signs_no_browser_in(server: Server) -> None:
    slug = unique("once")
    email = f"{slug}@example.com"
    with new_client(server.loopback) as owner:
        assert post_signup(owner, email, slug).status_code == 303
        link = path_of(verification_link(owner, email))
        first = owner.get(link)
        assert first.status_code == 303 and first.headers["location"].endswith("/progress")
        assert session_cookie(first)

    with new_client(server.loopback) as later:  # the link, found later in a mailbox, history or log
        again = later.get(link)
        assert again.status_code == 200 and session_cookie(again) is None
        page = Page(again.text)
        assert "already confirmed" in again.text
        assert "/login" in page.links
        assert later.get("/workspaces").status_code == 303  # still not signed in: off to the sign-in page
        assert post_login(later, email, PASSWORD).status_code == 303  # the password still works


def test_the_signup_form_answers_alike_for_a_registered_email(server: Server) -> None:
    slug = unique("holder")
    email = f"{slug}@example.com"
    with new_client(server.loopback) as holder:
        assert post_signup(holder, email, slug).status_code == 303
        holder.get(path_of(verification_link(holder, email)))  # confirmed

    with new_client(server.loopback) as someone:
        fresh_email = f"{unique('fresh')}@example.com"
        fresh = post_signup(someone, fresh_email, unique("fresh"))
        taken = post_signup(someone, email.upper(), unique("other"))
        assert fresh.status_code == taken.status_code == 303
        assert taken.headers["location"] == fresh.headers["location"].replace(
            fresh_email.replace("@", "%40"), email.replace("@", "%40")
        )
        assert Page(someone.get(taken.headers["location"]).text).said("sent-to") == email

    subject, body = server.query(
        "SELECT subject, body FROM mail_outbox WHERE to_address = %s ORDER BY id DESC LIMIT 1", email
    )[0]
    assert subject == "Sign in to Canopy"
    assert f"{server.url}/login" in body and "tried to sign up" in body
    assert server.query("SELECT count(*) FROM accounts WHERE email = %s", email)[0][0] == 1
