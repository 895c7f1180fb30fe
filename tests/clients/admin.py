"""An admin looks after accounts on the admin page.

Reads AUDIOMILL_URL, AUDIOMILL_EMAIL and AUDIOMILL_PASSWORD (an admin's), NEWCOMER (an address
to add), OTHER (an account that exists) and CHROMIUM (the browser's path). Finds accounts by
part of their address, adds the newcomer, sets its own limits, makes it an admin and turns it
off. Then invites INVITEE, waits for LINK_FILE to hold the link the invitation's mail carried
(the test reads the mail), makes the account through it in another browser and signs in.
Prints one JSON line of facts.
"""

import json
import os
import re

from playwright.sync_api import expect, sync_playwright

from dropping import sign_in
from handover import console_errors, launch, mailed_link, shot

BASE = os.environ["AUDIOMILL_URL"]
NEWCOMER = os.environ["NEWCOMER"]
OTHER = os.environ["OTHER"]


def invite(page, browser, facts):
    invitee = os.environ["INVITEE"]
    page.get_by_label("E-mail to invite").fill(invitee)
    page.get_by_role("button", name="Send invitation").click()
    expect(page.locator("#admin-said")).to_have_text(re.compile("invitation"))
    facts["invited"] = page.locator("#admin-said").inner_text()
    joining = browser.new_context().new_page()
    joining.goto(mailed_link())
    expect(joining.get_by_role("heading", name="Make your account")).to_be_visible()
    joining.locator("#join-form").get_by_label("Password").fill("the invitee's password")
    joining.get_by_role("button", name="Make the account").click()
    expect(joining.get_by_role("heading", name="Sign in")).to_be_visible()
    facts["joined"] = joining.locator("#sign-in-problem").inner_text()
    sign_in(joining, invitee, "the invitee's password")
    facts["invitee_signed_in"] = True


def account_row(page, email):
    return page.locator(f'#admin-rows tr[data-email="{email}"]')


def main():
    facts = {}
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page()
        errors = console_errors(page)
        page.goto(BASE)
        sign_in(page, os.environ["AUDIOMILL_EMAIL"], os.environ["AUDIOMILL_PASSWORD"])
        page.get_by_role("link", name="Admin").click()
        expect(page.get_by_role("heading", name="Accounts")).to_be_visible()
        expect(account_row(page, OTHER)).to_have_count(1)
        facts["listed_at_first"] = page.locator("#admin-rows tr").count()

        page.get_by_label("Find by e-mail").fill(OTHER.split("@")[0])
        expect(page.locator("#admin-rows tr")).to_have_count(1)
        page.get_by_label("Find by e-mail").fill("")
        expect(page.locator("#admin-rows tr")).to_have_count(facts["listed_at_first"])

        page.locator("#admin-add").get_by_label("E-mail of the new account").fill(NEWCOMER)
        page.locator("#admin-add").get_by_label("First password").fill("a first password")
        page.get_by_role("button", name="Add account").click()
        row = account_row(page, NEWCOMER)
        expect(row).to_have_count(1)

        row.get_by_label(re.compile("^Storage limit")).fill("100")
        row.get_by_label(re.compile("^Jobs a day")).fill("5")
        row.get_by_role("button", name="Save limits").click()
        expect(page.locator("#admin-said")).to_have_text(f"Saved: {NEWCOMER}.")
        row = account_row(page, NEWCOMER)
        expect(row.get_by_label(re.compile("^Storage limit"))).to_have_value("100")
        row.get_by_role("button", name="Make admin").click()
        expect(account_row(page, NEWCOMER).locator("td").nth(1)).to_have_text("active, admin")
        account_row(page, NEWCOMER).get_by_role("button", name="Turn off").click()
        expect(account_row(page, NEWCOMER).locator("td").nth(1)).to_have_text("turned off, admin")
        facts["newcomer_state"] = account_row(page, NEWCOMER).locator("td").nth(1).inner_text()
        shot(page, "admin-desktop")
        invite(page, browser, facts)
        facts["console_errors"] = errors
        browser.close()
    print(json.dumps(facts))


if __name__ == "__main__":
    main()
