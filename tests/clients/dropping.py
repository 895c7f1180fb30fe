"""What the browser scripts share: signing in, dropping files on the web app's drop zone at
once, as a person drags them (or a folder) there, and noting every state a file's row shows."""

import base64
import re

from playwright.sync_api import expect

# What a row says once its MP3 is made (then with the MP3's length and size).
DONE = re.compile(r"^Done")


def drop_files(page, files):
    """Drops `files` ({name: bytes}) on the drop zone in one drag."""
    encoded = [
        {"name": name, "data": base64.b64encode(data).decode()} for name, data in files.items()
    ]
    transfer = page.evaluate_handle(
        """files => {
            const transfer = new DataTransfer();
            for (const { name, data } of files) {
                const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
                transfer.items.add(new File([bytes], name));
            }
            return transfer;
        }""",
        encoded,
    )
    page.dispatch_event("#drop", "drop", {"dataTransfer": transfer})


def sign_in(page, email, password):
    """Signs in through the form and waits for the converter's page."""
    page.get_by_label("E-mail", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Convert videos to MP3")).to_be_visible()


def watch_states(page):
    """From now on, notes every text a file's row shows (see `seen_states`)."""
    page.evaluate(
        """() => {
            window.seenStates = new Set();
            new MutationObserver(() => {
                for (const state of document.querySelectorAll("li.file .state")) {
                    window.seenStates.add(state.textContent);
                }
            }).observe(document.body, { subtree: true, childList: true, characterData: true });
        }"""
    )


def seen_states(page):
    """Every text a file's row showed since `watch_states`, sorted."""
    return sorted(page.evaluate("() => [...window.seenStates]"))


def convert(page):
    """Presses the newest drop's Convert button, as a person does once the files are listed."""
    group = page.locator("#uploads > li.group").first
    group.get_by_role("button", name=re.compile(r"^Convert \d+ files?$")).click()
