"""People sign in with the organisation's OpenID provider (single sign-on).

Reads AUDIOMILL_URL, CHROMIUM, PROVIDER (the provider's address, with its control routes; see
tests/tools/oidc_provider.mjs), ADMIN_EMAIL and ADMIN_PASSWORD (an admin who signs in with a
password), and TAKEN_EMAIL (an account made with a password, whose address the provider's
person `taken` has). In turn: `boss` signs in (a new account) and stays signed in over a
reload; the provider's answer replayed, a tampered ID token and an ID token of another issuer
are refused; a rotated signing key is not; a sign-in cancelled at the provider and one whose
address the provider did not verify (`una`) are refused; `taken` is refused the existing
account until the admin lets single sign-on take it. Prints one JSON line of facts.
"""

import json
import os
import urllib.parse
import urllib.request

from playwright.sync_api import expect, sync_playwright

from dropping import sign_in
from handover import console_errors, launch, shot

BASE = os.environ["AUDIOMILL_URL"]
PROVIDER = os.environ["PROVIDER"]
CONVERTER = "Convert videos to MP3"


def control(what):
    """Changes what the provider does from now on (`rotate`, `tamper`, `issuer?to=...`)."""
    urllib.request.urlopen(urllib.request.Request(f"{PROVIDER}/control/{what}", method="POST"))


def through_provider(page, login):
    """Signs in at the provider as `login` (where it asks) and returns to the service."""
    page.get_by_role("link", name="Sign in with Example ID").click()
    page.wait_for_url(lambda url: url.startswith(BASE) or "/interaction/" in url)
    for _ in range(3):
        if page.url.startswith(BASE):
            break
        if page.locator("input[name=login]").count():
            page.locator("input[name=login]").fill(login)
            page.locator("input[name=password]").fill("any password")
        page.locator("button[type=submit]").first.click()
        page.wait_for_url(lambda url: url.startswith(BASE) or "/interaction/" in url)
    page.wait_for_load_state("networkidle")


def signed_in(page):
    return page.get_by_role("heading", name=CONVERTER).is_visible()


def problem(page):
    expect(page.locator("#sign-on-problem")).not_to_be_empty()
    return page.locator("#sign-on-problem").inner_text()


def boss_signs_in(page, facts):
    callbacks = []
    page.on("request", lambda r: callbacks.append(r.url) if "/oidc/callback" in r.url else None)
    page.goto(BASE)
    expect(page.get_by_role("link", name="Sign in with Example ID")).to_be_visible()
    shot(page, "sign-on-desktop")
    through_provider(page, "boss")
    expect(page.get_by_role("heading", name=CONVERTER)).to_be_visible()
    facts["boss_signed_in"] = True
    expect(page.locator("#nav-admin")).to_be_visible()
    facts["boss_is_admin"] = True
    page.reload()
    expect(page.get_by_role("heading", name=CONVERTER)).to_be_visible()
    facts["kept_on_reload"] = True
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    # The provider's answer again, in the browser that began the sign-in.
    page.goto(callbacks[-1])
    facts["replayed"] = problem(page)
    facts["replay_signed_in"] = signed_in(page)
    facts["error_left_in_address"] = "sign_in_error" in page.url


def refusals(page, facts):
    control("tamper")
    through_provider(page, "boss")
    facts["tampered"] = problem(page)
    facts["tampered_signed_in"] = signed_in(page)
    control("rotate")
    through_provider(page, "boss")
    expect(page.get_by_role("heading", name=CONVERTER)).to_be_visible()
    facts["signed_in_after_rotation"] = True
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    other = PROVIDER.replace("localhost", "127.0.0.1")
    control(f"issuer?to={other}")
    through_provider(page, "boss")
    facts["wrong_issuer"] = problem(page)
    facts["wrong_issuer_signed_in"] = signed_in(page)
    # Without the answer's `iss`, the ID token's own issuer is what gives it away.
    page.route("**/oidc/callback?*", without_issuer)
    through_provider(page, "boss")
    facts["unnamed_wrong_issuer"] = problem(page)
    facts["unnamed_wrong_issuer_signed_in"] = signed_in(page)
    page.unroute("**/oidc/callback?*")
    control(f"issuer?to={PROVIDER}")


def without_issuer(route):
    """The provider's answer to the service without its `iss` parameter."""
    url = urllib.parse.urlsplit(route.request.url)
    query = [(k, v) for k, v in urllib.parse.parse_qsl(url.query) if k != "iss"]
    route.continue_(url=url._replace(query=urllib.parse.urlencode(query)).geturl())


def provider_says_no(browser, facts):
    """The person cancels at the provider; then signs in as someone whose address the provider
    has not verified."""
    page = browser.new_context().new_page()
    page.goto(BASE)
    page.get_by_role("link", name="Sign in with Example ID").click()
    page.get_by_role("link", name="[ Cancel ]").click()
    facts["cancelled"] = problem(page)
    through_provider(page, "una")
    facts["unverified"] = problem(page)
    facts["unverified_signed_in"] = signed_in(page)


def taken_over(browser, facts):
    person = browser.new_context().new_page()
    person.goto(BASE)
    through_provider(person, "taken")
    facts["taken_refused"] = problem(person)
    admin = browser.new_context().new_page()
    admin.goto(BASE)
    sign_in(admin, os.environ["ADMIN_EMAIL"], os.environ["ADMIN_PASSWORD"])
    admin.goto(f"{BASE}/#/admin")
    admin.get_by_label("Find by e-mail").fill(os.environ["TAKEN_EMAIL"])
    admin.get_by_label("Find by e-mail").press("Enter")
    row = admin.locator(f"tr[data-email='{os.environ['TAKEN_EMAIL']}']")
    row.get_by_role("button", name="Let single sign-on take it").click()
    expect(row).to_contain_text("single sign-on may take it")
    through_provider(person, "taken")
    expect(person.get_by_role("heading", name=CONVERTER)).to_be_visible()
    facts["taken_signed_in"] = True


def main():
    facts = {}
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page()
        errors = console_errors(page)
        boss_signs_in(page, facts)
        refusals(page, facts)
        provider_says_no(browser, facts)
        taken_over(browser, facts)
        facts["console_errors"] = errors
        browser.close()
    print(json.dumps(facts))


main()
