"""A person drops a video on the web app while the conversion service is down.

Reads AUDIOMILL_URL, AUDIOMILL_EMAIL, AUDIOMILL_PASSWORD, CHROMIUM (the browser's path) and
MEDIA (a folder with clip.mp4). The test stops the conversion service (Temporal) before; the
page sends the file and says that it waits, and this script prints `waiting` when it does,
for the test to start the service again. The page then follows the job to "Done" with no
click. Prints one JSON line of facts last.
"""

import json
import os
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

from dropping import DONE, convert, drop_files, seen_states, sign_in, watch_states

BASE = os.environ["AUDIOMILL_URL"]
MEDIA = Path(os.environ["MEDIA"])
# The outage the test makes, then a short conversion on a busy 2-core machine.
PATIENCE_MS = 240_000


def main():
    facts = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=os.environ["CHROMIUM"])
        page = browser.new_page()
        page.goto(BASE)
        sign_in(page, os.environ["AUDIOMILL_EMAIL"], os.environ["AUDIOMILL_PASSWORD"])
        watch_states(page)
        drop_files(page, {"lecture.mp4": (MEDIA / "clip.mp4").read_bytes()})
        convert(page)
        row = page.locator("li.file", has=page.locator(".name", has_text="lecture.mp4"))
        expect(row.locator(".state")).to_contain_text("trying again by itself", timeout=PATIENCE_MS)
        print("waiting", flush=True)
        expect(row.locator(".state")).to_have_text(DONE, timeout=PATIENCE_MS)
        facts["states"] = seen_states(page)
        facts["buttons"] = row.locator("button").all_inner_texts()
        browser.close()
    print(json.dumps(facts))


main()
