"""A person saves a bucket of theirs on the account page and has a dropped video's MP3
written there too.

Reads AUDIOMILL_URL, AUDIOMILL_EMAIL, AUDIOMILL_PASSWORD, CHROMIUM (the browser's path),
ENDPOINT, BUCKET, ACCESS_KEY, SECRET_KEY (the bucket's server and keys) and VIDEO (a video's
path). Prints one JSON line of facts.
"""

import json
import os
import re
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

from dropping import DONE, convert, drop_files, sign_in
from handover import console_errors, launch, shot

BASE = os.environ["AUDIOMILL_URL"]


def save_connection(page, facts):
    page.get_by_role("link", name="Account").click()
    form = page.locator("#connection-form")
    form.get_by_label("Connection name").fill("my bucket")
    form.get_by_label("Server address (leave empty for AWS)").fill(os.environ["ENDPOINT"])
    form.get_by_label("Bucket").fill(os.environ["BUCKET"])
    form.get_by_label("Folder").fill("mp3s")
    form.get_by_label("Access key").fill(os.environ["ACCESS_KEY"])
    form.get_by_label("Secret key").fill(os.environ["SECRET_KEY"])
    form.get_by_role("button", name="Save connection").click()
    line = page.locator("li.connection")
    expect(line).to_have_count(1)
    facts["listed"] = line.locator("span").inner_text()
    facts["secret_shown"] = os.environ["SECRET_KEY"] in page.locator("body").inner_text()
    shot(page, "storage-desktop")


def main():
    facts = {}
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page()
        errors = console_errors(page)
        page.goto(BASE)
        sign_in(page, os.environ["AUDIOMILL_EMAIL"], os.environ["AUDIOMILL_PASSWORD"])
        save_connection(page, facts)
        page.get_by_role("link", name="Convert").click()
        choice = page.get_by_label("Also save the MP3s to")
        expect(choice).to_be_visible()
        mine = choice.locator("option", has_text=re.compile("^my bucket"))
        choice.select_option(value=mine.get_attribute("value"))
        drop_files(page, {"talk.mp4": Path(os.environ["VIDEO"]).read_bytes()})
        convert(page)
        row = page.locator("li.file").first
        expect(row.locator(".state")).to_have_text(DONE, timeout=60_000)
        facts["console_errors"] = errors
        browser.close()
    print(json.dumps(facts))


if __name__ == "__main__":
    main()
