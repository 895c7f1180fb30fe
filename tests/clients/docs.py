"""The Swagger UI at /docs in headless Chromium, driven by Playwright, under the page's own
security policy: it renders every operation with no console error or policy violation, and a
page of another origin that frames it shows nothing of it.

Reads AUDIOMILL_URL and CHROMIUM; prints one JSON line of facts.
"""

import json
import os
import sys

from playwright.sync_api import sync_playwright

BASE = os.environ["AUDIOMILL_URL"]
facts = {"problems": []}

with sync_playwright() as playwright:
    browser = playwright.chromium.launch(executable_path=os.environ["CHROMIUM"])
    page = browser.new_page()
    # The browser's own look for /favicon.ico is no problem of the page's.
    page.on(
        "console",
        lambda message: message.type == "error"
        and not message.location.get("url", "").endswith("/favicon.ico")
        and facts["problems"].append(message.text),
    )
    page.on("pageerror", lambda error: facts["problems"].append(str(error)))
    page.goto(BASE + "/docs")
    page.wait_for_selector(".opblock", timeout=30_000)
    facts["operations"] = page.locator(".opblock").count()
    facts["title"] = page.locator(".info .title").first.inner_text()

    # A foreign page that frames /docs: the frame stays empty.
    framing = browser.new_page()
    framing.set_content(f'<iframe id="docs" src="{BASE}/docs" width="800" height="600"></iframe>')
    framing.wait_for_timeout(2_000)
    frame = framing.frame_locator("#docs")
    facts["framed_operations"] = frame.locator(".opblock").count()
    browser.close()

print(json.dumps(facts))
sys.exit(0)
