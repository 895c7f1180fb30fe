"""A person reloads the web app mid-upload and mid-conversion, and finds everything again.

Reads AUDIOMILL_URL, AUDIOMILL_EMAIL, AUDIOMILL_PASSWORD, CHROMIUM (the browser's path) and
MEDIA (a folder with long.mkv, a video that converts for a while, and concert.mp4, a few MB
sent over a slowed-down connection). Chooses both, reloads while the first converts and the
second is half sent, then: the converting job is on the page again, followed live to "Done";
the half-sent upload is listed as unfinished, and choosing the same file again goes on from
where it stopped. Prints one JSON line of facts.
"""

import json
import os
import re
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

from dropping import DONE, convert, seen_states, sign_in, watch_states

BASE = os.environ["AUDIOMILL_URL"]
MEDIA = Path(os.environ["MEDIA"])
# Two conversions, one of a long video, on a busy 2-core machine.
CONVERSION_MS = 240_000
# Bytes per second a slowed-down upload is sent at.
SLOW = 128 * 1024


def row(page, name):
    return page.locator("li.file", has=page.locator(".name", has_text=name))


def upload_speed(cdp, throughput):
    """Sends uploads at `throughput` bytes a second (-1: as fast as the machine goes)."""
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": throughput},
    )


def main():
    facts = {"offsets": []}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=os.environ["CHROMIUM"])
        page = browser.new_page()
        cdp = page.context.new_cdp_session(page)
        page.goto(BASE)
        sign_in(page, os.environ["AUDIOMILL_EMAIL"], os.environ["AUDIOMILL_PASSWORD"])

        page.set_input_files("#files", [str(MEDIA / "long.mkv")])
        convert(page)
        converting = re.compile(r"^(Waiting for a converter|Getting the video ready|Converting)")
        expect(row(page, "long.mkv").locator(".state")).to_have_text(converting, timeout=60_000)
        upload_speed(cdp, SLOW)
        page.set_input_files("#files", [str(MEDIA / "concert.mp4")])
        convert(page)
        expect(row(page, "concert.mp4").locator(".state")).to_have_text(
            re.compile(r"^Uploading [1-9]"), timeout=60_000
        )
        page.reload()
        upload_speed(cdp, -1)

        expect(page.get_by_role("button", name="Sign out", exact=True)).to_be_visible()
        watch_states(page)
        long_row = row(page, "long.mkv")
        expect(long_row).to_be_visible()
        facts["followed_again_with"] = long_row.locator("button").all_inner_texts()
        unfinished = page.locator("#unfinished-list li")
        expect(unfinished).to_have_count(1)
        facts["unfinished"] = unfinished.inner_text()

        # The history follows the running job too, with its Cancel.
        page.get_by_role("link", name="History").click()
        running = page.locator("#history-rows tr:not(.drop-heading)", has_text="long.mkv")
        expect(running.locator("td").nth(1)).to_have_text(converting)
        facts["history_running"] = running.locator("td").nth(1).inner_text()
        facts["history_buttons"] = running.get_by_role("button").all_inner_texts()
        page.get_by_role("link", name="Convert").click()

        def chunk(request):
            if request.method == "PATCH" and "/uploads/" in request.url:
                facts["offsets"].append(int(request.headers.get("upload-offset", "-1")))

        page.on("request", chunk)
        page.set_input_files("#files", [str(MEDIA / "concert.mp4")])
        convert(page)
        expect(row(page, "concert.mp4").locator(".state")).to_have_text(DONE, timeout=CONVERSION_MS
        )
        expect(long_row.locator(".state")).to_have_text(DONE, timeout=CONVERSION_MS)
        facts["unfinished_left"] = unfinished.count()
        facts["states"] = seen_states(page)
        facts["failed"] = page.locator("li.file.failed").count()
        browser.close()
    print(json.dumps(facts))


main()
