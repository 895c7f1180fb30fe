"""What the browser tests share: the browser (CHROMIUM), the console errors a page shows, and
what a test and its Rust side hand each other: a mailed link the test found in the mail
(LINK_FILE), and screenshots for the guide (SHOTS)."""

import os
import time
from pathlib import Path


def mailed_link():
    """The link the test found in the mail and wrote to LINK_FILE (waits up to a minute)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with open(os.environ["LINK_FILE"]) as file:
                link = file.read().strip()
            if link:
                return link
        except FileNotFoundError:
            pass
        time.sleep(0.2)
    raise TimeoutError("no mailed link arrived")


def shot(page, name):
    """Saves the page as SHOTS/name.png (for the guide), when SHOTS is given."""
    if "SHOTS" in os.environ:
        Path(os.environ["SHOTS"]).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(os.environ["SHOTS"]) / f"{name}.png"), full_page=True)


def launch(playwright):
    """Debian's Chromium, at CHROMIUM."""
    return playwright.chromium.launch(executable_path=os.environ["CHROMIUM"])


def console_errors(page):
    """The errors the page's console shows from now on, but failed loads (the refusals a story
    provokes, such as 401s, are logged as those)."""
    errors = []

    def note(message):
        if message.type == "error" and "Failed to load resource" not in message.text:
            errors.append(message.text)

    page.on("console", note)
    return errors
