"""A person watches a folder of their bucket from the account page: a video already there is
converted, and they pause, resume and delete the watch.

Reads AUDIOMILL_URL, AUDIOMILL_EMAIL, AUDIOMILL_PASSWORD, CHROMIUM (the browser's path) and
the name of a connection already saved (CONNECTION_NAME). Prints one JSON line of facts.
"""

import json
import os
import time

from playwright.sync_api import expect, sync_playwright

from dropping import sign_in
from handover import console_errors, launch, shot

BASE = os.environ["AUDIOMILL_URL"]


def watch_folder(page, facts):
    page.get_by_role("link", name="Account").click()
    form = page.locator("#watch-form")
    form.get_by_label("Watch name").fill("camera")
    form.get_by_label("In the storage").select_option(label=os.environ["CONNECTION_NAME"])
    form.get_by_label("Folder in it").fill("camera")
    form.get_by_label("Its MP3s are made for").select_option("voice")
    form.get_by_label("Also save its MP3s to").select_option(label=os.environ["CONNECTION_NAME"])
    form.get_by_label("As (in that storage)").fill("mp3/{stem}.mp3")
    form.get_by_label("Videos converted at once").fill("2")
    form.get_by_role("button", name="Watch this folder").click()
    line = page.locator("li.watch")
    expect(line).to_have_count(1)
    facts["listed"] = line.locator(".name").inner_text()


def converted_one(page, facts):
    """Opens the account page again until the watch says its one video is converted."""
    deadline = time.time() + 60
    stands = ""
    while time.time() < deadline:
        page.get_by_role("link", name="Convert").click()
        page.get_by_role("link", name="Account").click()
        stands = page.locator("li.watch .stands").inner_text()
        if stands == "watching, 1 converted or under way (0 now)":
            break
        time.sleep(0.5)
    facts["converted"] = stands
    shot(page, "watches-desktop")


def main():
    facts = {}
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page()
        errors = console_errors(page)
        page.goto(BASE)
        sign_in(page, os.environ["AUDIOMILL_EMAIL"], os.environ["AUDIOMILL_PASSWORD"])
        watch_folder(page, facts)
        converted_one(page, facts)
        line = page.locator("li.watch")
        line.get_by_role("button", name="Pause").click()
        expect(line.locator(".stands")).to_have_text("paused, 1 converted or under way")
        line.get_by_role("button", name="Resume").click()
        expect(line.locator(".stands")).to_contain_text("watching")
        line.get_by_role("button", name="Delete").click()
        expect(page.locator("li.watch")).to_have_count(0)
        facts["none_shown"] = page.locator("#no-watches").is_visible()
        facts["console_errors"] = errors
        browser.close()
    print(json.dumps(facts))


if __name__ == "__main__":
    main()
