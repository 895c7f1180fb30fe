"""A person converts a video from a link in the web app.

Reads AUDIOMILL_URL, AUDIOMILL_EMAIL, AUDIOMILL_PASSWORD, CHROMIUM (the browser's path),
VIDEO_LINK (a link to a video, with credentials in it) and MISSING_LINK (a link to nothing).
Pastes the first, with the Voice preset, and waits for the MP3; pastes the second and reads
why it failed. Prints one JSON line of facts.
"""

import json
import os
import re

from playwright.sync_api import expect, sync_playwright

from dropping import sign_in
from handover import console_errors, launch, shot

BASE = os.environ["AUDIOMILL_URL"]


def paste(page, link):
    page.get_by_label("Or paste a link to a video").fill(link)
    page.get_by_role("button", name="Convert from link").click()


def main():
    facts = {}
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page()
        errors = console_errors(page)
        page.goto(BASE)
        sign_in(page, os.environ["AUDIOMILL_EMAIL"], os.environ["AUDIOMILL_PASSWORD"])
        page.locator("#advanced summary").click()
        page.locator("select[name=preset]").select_option("voice")
        paste(page, os.environ["VIDEO_LINK"])
        row = page.locator("li.file").first
        expect(row.locator(".state")).to_have_text(re.compile("^Done"), timeout=60_000)
        facts["name"] = row.locator(".name").inner_text()
        facts["size"] = row.locator(".size").inner_text()
        facts["field_emptied"] = page.get_by_label("Or paste a link to a video").input_value() == ""
        shot(page, "link-desktop")
        paste(page, os.environ["MISSING_LINK"])
        failed = page.locator("li.file").first
        expect(failed.locator(".state")).to_have_text(re.compile("^Failed"), timeout=60_000)
        facts["failure"] = failed.locator(".state").inner_text()
        facts["page_text"] = page.locator("body").inner_text()
        facts["console_errors"] = errors
        browser.close()
    print(json.dumps(facts))


if __name__ == "__main__":
    main()
