"""A person drops a dozen files at once on the web app, in headless Chromium (Playwright).

Reads AUDIOMILL_URL, AUDIOMILL_EMAIL, AUDIOMILL_PASSWORD, CHROMIUM (the browser's path) and
MEDIA (a folder with clip.mp4, notes.txt and album/, a folder of three videos, a text file and
a hidden file). Drops ten copies of the clip under ten names, the text file and an empty video
together; the bad two are refused before sending, the ten are sent a few at a time (never more
than the account may upload at once) and all of them convert. Then picks the album folder
with advanced choices (a constant 192 kbit/s) and converts it. Prints one JSON line of facts for the test to check further.
"""

import json
import os
import re
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

from dropping import DONE, convert, drop_files, seen_states, sign_in, watch_states

BASE = os.environ["AUDIOMILL_URL"]
MEDIA = Path(os.environ["MEDIA"])
# Ten short conversions, from the drop to "Done", on a busy 2-core machine.
CONVERSION_MS = 240_000
GOOD = [f"clip{n:02}.mp4" for n in range(1, 11)]
# The videos of the folder MEDIA/album, in the order a person reads their names.
FOLDER = ["01 intro.mp4", "02 song.mp4", "10 outro.mp4"]


# Every text a row may show, from the web app's English catalogue: a {parameter} stands for
# anything.
CATALOGUE = json.loads(
    (Path(__file__).parents[2] / "web/src/strings/en.json").read_text()
).values()
SAYABLE = [
    re.compile("^" + re.sub(r"\\\{\w+\\\}", ".+", re.escape(text)) + "$") for text in CATALOGUE
]


def unsaid(states):
    """The states that no text of the catalogue says."""
    return [state for state in states if not any(p.match(state) for p in SAYABLE)]


def row(page, name):
    return page.locator("li.file", has=page.locator(".name", has_text=name))


def main():
    facts = {"statuses": {}}
    clip = (MEDIA / "clip.mp4").read_bytes()
    files = {name: clip for name in GOOD}
    files["notes.txt"] = (MEDIA / "notes.txt").read_bytes()
    files["empty.mp4"] = b""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=os.environ["CHROMIUM"])
        page = browser.new_page()
        # Every answer to an upload request, by status: no 429 may come back.
        def seen(response):
            if "/uploads" in response.url:
                status = str(response.status)
                facts["statuses"][status] = facts["statuses"].get(status, 0) + 1

        # Chunks in flight at once, at most: never more than the account may send.
        flight = {"now": 0, "most": 0}

        def chunk(request, step):
            if "/uploads/" in request.url and request.method == "PATCH":
                flight["now"] += step
                flight["most"] = max(flight["most"], flight["now"])

        page.on("response", seen)
        page.on("request", lambda request: chunk(request, 1))
        page.on("requestfinished", lambda request: chunk(request, -1))
        page.on("requestfailed", lambda request: chunk(request, -1))
        page.goto(BASE)
        sign_in(page, os.environ["AUDIOMILL_EMAIL"], os.environ["AUDIOMILL_PASSWORD"])
        # Every state a row shows on the way, to check that none names an internal step.
        watch_states(page)
        drop_files(page, files)
        # Leaving with files not yet sent asks first; once all are sent, it does not.
        leave = """() => {
            const event = new Event("beforeunload", { cancelable: true });
            window.dispatchEvent(event);
            return event.defaultPrevented;
        }"""
        facts["asks_before_leaving_while_sending"] = page.evaluate(leave)
        expect(page.get_by_role("button", name="Convert 10 files")).to_be_visible()
        convert(page)
        expect(row(page, "notes.txt").locator(".state")).to_have_text(re.compile(r"^Refused: "))
        expect(row(page, "empty.mp4").locator(".state")).to_have_text(
            "Refused: The file is empty."
        )
        for name in GOOD:
            expect(row(page, name).locator(".state")).to_have_text(DONE, timeout=CONVERSION_MS)
        facts["done"] = page.locator("li.file.done").count()
        facts["asks_before_leaving_when_sent"] = page.evaluate(leave)
        facts["failed"] = page.locator("li.file.failed").count()
        facts["most_chunks_at_once"] = flight["most"]
        facts["states"] = seen_states(page)
        facts["states_not_in_catalogue"] = unsaid(facts["states"])

        # A folder, converted with advanced choices: its videos in name order, its other files
        # refused, its hidden ones left out.
        page.get_by_text("Advanced").click()
        page.locator("select[name=bitrate_mode]").select_option("cbr")
        page.locator("select[name=bitrate]").select_option("192")
        page.set_input_files("#folder", str(MEDIA / "album"))
        group = page.locator("#uploads > li.group").first
        expect(group.get_by_role("button", name="Convert 3 files")).to_be_visible()
        facts["folder_rows"] = group.locator("li.file .name").all_inner_texts()
        convert(page)
        facts["folder_settings"] = group.locator(".summary").inner_text()
        for name in FOLDER:
            expect(row(page, name).locator(".state")).to_have_text(DONE, timeout=CONVERSION_MS)
        browser.close()
    print(json.dumps(facts))


main()
