"""A person manages their credentials on the account page.

Reads AUDIOMILL_URL, AUDIOMILL_EMAIL, AUDIOMILL_PASSWORD and CHROMIUM (the browser's path).
Creates an API key for uploads (the key shown once, then used from outside the browser), revokes
it, changes the password, and signs out everywhere from a second browser while the first is
signed in. Then forgets the password: asks for a link, waits for LINK_FILE to hold the link the
mail carried (the test reads the mail), opens it, chooses a new password and signs in with it.
Prints one JSON line of facts.
"""

import json
import os
import re
import urllib.error
import urllib.request

from playwright.sync_api import expect, sync_playwright

from dropping import sign_in
from handover import console_errors, launch, mailed_link, shot

BASE = os.environ["AUDIOMILL_URL"]
EMAIL = os.environ["AUDIOMILL_EMAIL"]
PASSWORD = os.environ["AUDIOMILL_PASSWORD"]
NEW_PASSWORD = "a brand new password"
CHOSEN_PASSWORD = "chosen through the link"


def forget_password(page, facts):
    page.get_by_text("Forgot your password?").click()
    page.get_by_label("Your account's e-mail").fill(EMAIL)
    page.get_by_role("button", name="Send me a link").click()
    expect(page.locator("#forgot-said")).to_have_text(re.compile("link"))
    facts["forgot_said"] = page.locator("#forgot-said").inner_text()
    page.goto(mailed_link())
    expect(page.get_by_role("heading", name="Choose a new password")).to_be_visible()
    page.locator("#reset-form").get_by_label("New password").fill(CHOSEN_PASSWORD)
    page.get_by_role("button", name="Save the new password").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    facts["after_reset"] = page.locator("#sign-in-problem").inner_text()
    facts["token_left_in_address"] = "token=" in page.url
    sign_in(page, EMAIL, CHOSEN_PASSWORD)
    facts["signed_in_with_chosen"] = True


def status_with(token, path="/jobs"):
    """The status `path` answers the holder of `token`."""
    request = urllib.request.Request(BASE + path)
    request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def create_key(page, facts):
    page.get_by_label("Name", exact=True).fill("phone shortcut")
    page.locator("select[name=expires]").select_option("30")
    page.get_by_role("button", name="Create key").click()
    shown = page.locator("#new-key-value")
    expect(shown).to_have_text(re.compile(r"^amk_"))
    key = shown.inner_text()
    facts["key_shape"] = bool(re.fullmatch(r"amk_[0-9A-Za-z]{12}_[0-9A-Za-z]{40}", key))
    facts["key_works"] = status_with(key)
    facts["key_may_not_read_webhooks"] = status_with(key, "/webhooks")
    line = page.locator("li.key")
    expect(line).to_have_count(1)
    facts["listed"] = line.locator(".key-name").inner_text()
    facts["secret_listed"] = key[17:] in page.locator("#keys").inner_text()
    return key


def main():
    facts = {}
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page()
        errors = console_errors(page)
        page.goto(BASE)
        sign_in(page, EMAIL, PASSWORD)
        page.get_by_role("link", name="Account").click()
        expect(page.get_by_role("heading", name="API keys")).to_be_visible()
        facts["admin_scope_offered"] = page.locator("#admin-scope").is_visible()
        facts["admin_link_shown"] = page.locator("#nav-admin").is_visible()

        key = create_key(page, facts)
        shot(page, "account-desktop")
        page.locator("li.key").get_by_role("button", name="Revoke").click()
        expect(page.locator("li.key")).to_have_count(0)
        facts["revoked_key"] = status_with(key)

        page.locator("#password-form").get_by_label("Current password").fill("not my password")
        page.locator("#password-form").get_by_label("New password").fill(NEW_PASSWORD)
        page.get_by_role("button", name="Change password").click()
        expect(page.locator("#password-problem")).not_to_be_empty()
        facts["wrong_current"] = page.locator("#password-problem").inner_text()
        page.locator("#password-form").get_by_label("Current password").fill(PASSWORD)
        page.locator("#password-form").get_by_label("New password").fill(NEW_PASSWORD)
        page.get_by_role("button", name="Change password").click()
        expect(page.locator("#password-problem")).to_have_text(re.compile("changed"))

        # A second browser signs in with the new password, and ends every sign-in.
        other = browser.new_context().new_page()
        other.goto(BASE)
        sign_in(other, EMAIL, NEW_PASSWORD)
        other.get_by_role("link", name="Account").click()
        other.get_by_role("button", name="Sign out everywhere").click()
        expect(other.get_by_role("heading", name="Sign in")).to_be_visible()
        page.reload()
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        facts["first_browser_signed_out"] = True
        forget_password(page, facts)
        facts["console_errors"] = errors
        browser.close()
    print(json.dumps(facts))


if __name__ == "__main__":
    main()
