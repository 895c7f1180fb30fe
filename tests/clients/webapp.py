"""A person using the web app in headless Chromium, driven by Playwright.

Reads AUDIOMILL_URL, AUDIOMILL_EMAIL, AUDIOMILL_PASSWORD, CHROMIUM (the browser's path), AXE
(axe-core's script),
MEDIA (a folder with talk.mp4, song.mp4, notes.txt, big.mp4, long.mkv and silent.mp4) and OUT (where
downloads and screenshots go). Checks what the person sees as it goes (a failed check ends
the run with its message) and prints one JSON line of facts for the test to check further.
"""

import json
import os
import re
import sys
import urllib.error
import urllib.request
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

from dropping import DONE, convert, drop_files

BASE = os.environ["AUDIOMILL_URL"]
EMAIL = os.environ["AUDIOMILL_EMAIL"]
PASSWORD = os.environ["AUDIOMILL_PASSWORD"]
MEDIA = Path(os.environ["MEDIA"])
OUT = Path(os.environ["OUT"])
SHOTS = OUT / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# A conversion of a short clip, from the drop to "Done", on a busy 2-core machine.
CONVERSION_MS = 120_000

# axe-core, run in the page through the driver (which the page's policy does not govern).
AXE = Path(os.environ["AXE"]).read_text()
facts = {"accessibility": {}}


def api(method, path, token):
    """The server's status for `method path` with `token`, outside the browser."""
    request = urllib.request.Request(BASE + path, method=method)
    request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def sign_in(page, password=PASSWORD):
    """Signs in through the form; the access token the server gave, if it gave one."""
    page.get_by_label("E-mail", exact=True).fill(EMAIL)
    page.get_by_label("Password", exact=True).fill(password)
    with page.expect_response(re.compile(r"/session$")) as answer:
        page.get_by_role("button", name="Sign in").click()
    response = answer.value
    return response.json().get("access_token") if response.ok else None


def drop(page, names):
    """Drops the files `names` of MEDIA on the drop zone, as a person drags them there."""
    drop_files(page, {name: (MEDIA / name).read_bytes() for name in names})


def row(page, name):
    return page.locator("li.file", has=page.locator(".name", has_text=name))


def shot(page, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def keyboard(page, choosers):
    """The file chooser is reached with Tab from the top and opens with Enter or Space.

    `choosers` collects the choosers the page opens; its listener is set well before, since
    Playwright turns interception on without waiting and a chooser opened before that is lost.
    """
    for key in ["Enter", " "]:
        page.locator("body").focus()
        # From wherever the last round left focus, round the page once at most.
        for _ in range(40):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.id") == "files":
                break
        assert page.evaluate("document.activeElement.id") == "files", page.evaluate(
            "document.activeElement.outerHTML"
        )
        choosers.clear()
        page.keyboard.press(key)
        for _ in range(150):
            if choosers:
                break
            page.wait_for_timeout(100)
        assert choosers, f"{key!r} never opened the file chooser"
        assert choosers[0].is_multiple()


def accessible(page, name):
    """Records what axe-core finds against WCAG 2.1 A and AA and its best practices."""
    if not page.evaluate("typeof axe !== 'undefined'"):
        page.evaluate(AXE)
    found = page.evaluate(
        """async () => (await axe.run(document, {
            runOnly: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"],
        })).violations.map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target).join(", ")}`)"""
    )
    facts["accessibility"][name] = found


def choose(page):
    """Settings, plain then advanced, sent with the files converted after them and kept for
    the next visit because the person asks."""
    page.locator("select[name=quality]").select_option(label="Good: about 1.2 MB a minute")
    page.locator("select[name=channels]").select_option("1")
    # A trim says what it keeps before anything is sent.
    page.get_by_label("Start at").fill("0:30")
    page.get_by_label("End at").fill("2:00")
    facts["trim_preview"] = page.locator("#trim-help").inner_text()
    page.get_by_label("End at").fill("")
    page.get_by_label("Start at").fill("")
    page.get_by_text("Advanced").click()
    page.get_by_label("Title").fill("Holiday")
    page.get_by_label("Remember these settings on this browser").check()
    page.get_by_text("Advanced").click()


def convert_and_download(page):
    # The drop zone and the chooser name what this server accepts (ALLOWED_EXTENSIONS).
    expect(page.locator("#drop-types")).to_have_text("MP4, MKV, WebM")
    expect(page.locator("#files")).to_have_attribute("accept", ".mp4,.mkv,.webm")
    choose(page)
    drop(page, ["talk.mp4", "song.mp4", "notes.txt"])
    # Refused by the server's own rules (ALLOWED_EXTENSIONS, MAX_FILE_SIZE), before sending.
    expect(row(page, "notes.txt").locator(".state")).to_have_text(
        "Refused: .txt files are not accepted; accepted: mp4, mkv, webm."
    )
    # Nothing is sent before Convert: the files wait with the settings in view.
    expect(row(page, "talk.mp4").locator(".state")).to_have_text("Ready to convert")
    convert(page)
    facts["settings_applied"] = page.locator("#uploads > li.group .summary").first.inner_text()
    for name in ["talk.mp4", "song.mp4"]:
        expect(row(page, name).locator(".state")).to_have_text(DONE, timeout=CONVERSION_MS)
        expect(row(page, name).locator("progress")).to_have_js_property("value", 100)
    # Done says how long the MP3 is and how big.
    expect(row(page, "talk.mp4").locator(".state")).to_have_text(re.compile(r"^Done: \d+ s, [\d.]+ KB$"))
    shot(page, "convert-desktop")
    page.get_by_text("Advanced").click()
    accessible(page, "convert")
    page.get_by_text("Advanced").click()
    with page.expect_download() as download:
        row(page, "talk.mp4").get_by_role("button", name="Download MP3").click()
    download.value.save_as(OUT / download.value.suggested_filename)
    facts["mp3"] = download.value.suggested_filename
    with page.expect_download() as download:
        page.get_by_role("button", name="Download all as ZIP").click()
    download.value.save_as(OUT / "all.zip")


def cancel_and_fail(page):
    page.set_input_files("#files", [str(MEDIA / "big.mp4")])
    expect(row(page, "big.mp4").locator(".state")).to_have_text(
        "Refused: The file is larger than the 10.0 MB limit."
    )
    page.set_input_files("#files", [str(MEDIA / "long.mkv")])
    convert(page)
    state = row(page, "long.mkv").locator(".state")
    expect(state).to_contain_text("Converting", timeout=CONVERSION_MS)
    row(page, "long.mkv").get_by_role("button", name="Cancel").click()
    expect(state).to_have_text("Cancelled", timeout=CONVERSION_MS)
    page.set_input_files("#files", [str(MEDIA / "silent.mp4")])
    convert(page)
    failed = row(page, "silent.mp4").locator(".state")
    expect(failed).to_have_text(re.compile(r"^Failed: "), timeout=CONVERSION_MS)
    facts["failed"] = failed.inner_text()


def history(page):
    page.get_by_role("link", name="History").click()
    rows = page.locator("#history-rows tr:not(.drop-heading)")
    expect(rows).to_have_count(20)
    expect(rows.first).to_contain_text("silent.mp4")
    page.get_by_role("button", name="Older jobs").click()
    expect(rows).to_have_count(facts["jobs"])
    expect(page.get_by_role("button", name="Older jobs")).to_be_hidden()
    shot(page, "history-desktop")
    accessible(page, "history")
    # The files of one drop under one heading, with their ZIP named after them.
    drops = page.locator("#history-rows tr.drop-heading")
    facts["drop_headings"] = drops.count()
    with page.expect_download() as archive:
        drops.last.get_by_role("button", name="Download all as ZIP").click()
    facts["history_zip"] = archive.value.suggested_filename
    with page.expect_download() as download:
        rows.filter(has_text="song.mp4").get_by_role("button", name="Download").click()
    facts["from_history"] = download.value.suggested_filename
    # A completed job shows its MP3's length and size.
    expect(rows.filter(has_text="song.mp4")).to_contain_text(re.compile(r"completed, \d+ s, [\d.]+ KB"))
    page.get_by_label("Status").select_option("failed")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("silent.mp4")
    # A failed one, the reason.
    expect(rows.first).to_contain_text("failed: ")
    expect(rows.first).to_contain_text("no sound to convert")
    # A delete asks first; refused, nothing goes.
    questions = []

    def answer(dialog, accept):
        questions.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.once("dialog", lambda dialog: answer(dialog, False))
    rows.first.get_by_role("button", name="Delete").click()
    expect(rows).to_have_count(1)
    page.once("dialog", lambda dialog: answer(dialog, True))
    rows.first.get_by_role("button", name="Delete").click()
    expect(rows).to_have_count(0)
    assert questions == ["Delete silent.mp4?"] * 2, questions
    page.get_by_label("Status").select_option("cancelled")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("long.mkv")


def account(page):
    page.get_by_role("link", name="Account").click()
    expect(page.locator("#account-facts")).to_contain_text(EMAIL)
    expect(page.locator("#account-facts")).to_contain_text("Jobs today")
    expect(page.locator("#no-webhooks")).to_be_visible()
    shot(page, "account-desktop")
    accessible(page, "account")


TUS_KEYS = "Object.keys(localStorage).filter(key => key.startsWith('tus::'))"


def sessions_end(page, token):
    # What tus-js-client keeps of an upload left unfinished (its file, size and address).
    page.evaluate(
        """localStorage.setItem('tus::tus-br-unfinished.mp4-1000::1', JSON.stringify(
            {size: 1000, metadata: {filename: 'unfinished.mp4'}, uploadUrl: '/uploads/x'}))"""
    )
    facts["uploads_stored_before_sign_out"] = len(page.evaluate(TUS_KEYS))
    # A reload keeps the login, through a cookie no script on the page can read.
    view = page.evaluate("location.hash")
    page.reload()
    expect(page.get_by_role("button", name="Sign out", exact=True)).to_be_visible()
    expect(page.get_by_role("heading", name="Sign in")).to_be_hidden()
    facts["view_after_reload"] = [view, page.evaluate("location.hash")]
    facts["session_cookies"] = [
        {key: cookie[key] for key in ["name", "path", "httpOnly", "sameSite", "secure"]}
        for cookie in page.context.cookies()
    ]
    facts["cookies_scripts_see"] = page.evaluate("document.cookie")
    facts["tokens_stored"] = page.evaluate(
        """() => [localStorage, sessionStorage].flatMap((store) =>
            Object.keys(store).filter((key) => /token|session/i.test(key + store.getItem(key))))"""
    )
    page.get_by_role("button", name="Sign out", exact=True).click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    # Signed out, a reload finds no login to resume.
    page.reload()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    facts["cookies_after_sign_out"] = len(page.context.cookies())
    facts["token_after_sign_out"] = api("GET", "/me", token)
    facts["uploads_stored_after_sign_out"] = page.evaluate(TUS_KEYS)
    # A session ended elsewhere (its login revoked): the app notices at its next request.
    token = sign_in(page)
    expect(page.get_by_role("heading", name="Convert videos to MP3")).to_be_visible()
    facts["choices_kept"] = page.get_by_label("Title").input_value()
    # Reset puts every setting back and forgets them.
    page.get_by_role("button", name="Reset to defaults").click()
    facts["title_after_reset"] = page.get_by_label("Title").input_value()
    facts["settings_stored_after_reset"] = page.evaluate(
        "localStorage.getItem('audiomill.choices')"
    )
    assert api("POST", "/logout", token) == 204
    page.get_by_role("link", name="History").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    facts["expired"] = page.locator("#sign-in-problem").inner_text()


def phone(browser):
    """A phone-sized screen in the dark scheme."""
    context = browser.new_context(
        viewport=PHONE, is_mobile=True, has_touch=True, color_scheme="dark"
    )
    page = context.new_page()
    page.goto(BASE)
    shot(page, "sign-in-phone")
    accessible(page, "sign-in, phone, dark")
    sign_in(page)
    expect(page.get_by_role("heading", name="Convert videos to MP3")).to_be_visible()
    page.set_input_files("#files", [str(MEDIA / "talk.mp4")])
    convert(page)
    expect(row(page, "talk.mp4").locator(".state")).to_have_text(DONE, timeout=CONVERSION_MS)
    shot(page, "convert-phone")
    accessible(page, "convert, phone, dark")
    # The history as cards: no column squeezes a word into pieces, nothing runs off the side.
    page.get_by_role("link", name="History").click()
    expect(page.locator("#history-rows tr").first).to_be_visible()
    layout = page.evaluate(
        """() => {
            const cell = document.querySelector("#history-rows td:nth-child(2)");
            const text = cell.firstChild;
            const word = text.textContent.split(/[ ,:]/)[0];
            const range = document.createRange();
            range.setStart(text, 0);
            range.setEnd(text, word.length);
            return {
                display: getComputedStyle(cell).display,
                word,
                lines: range.getClientRects().length,
                // A phone's browser widens the page to what overflows: compare with the screen.
                overflow: document.documentElement.scrollWidth > screen.width,
            };
        }"""
    )
    assert layout["display"] == "block" and layout["lines"] == 1, layout
    assert not layout["overflow"], layout
    shot(page, "history-phone")
    context.close()
    # The light scheme on the same screen, for a person whose browser asks for German: every
    # word in German, the settings fit, and read; English again is one choice away.
    context = browser.new_context(
        viewport=PHONE, is_mobile=True, has_touch=True, color_scheme="light", locale="de-DE"
    )
    page = context.new_page()
    page.goto(BASE)
    expect(page.get_by_role("heading", name="Anmelden")).to_be_visible()
    page.locator("#sign-in-form input[name=email]").fill(EMAIL)
    page.locator("#sign-in-form input[name=password]").fill(PASSWORD)
    page.get_by_role("button", name="Anmelden").click()
    expect(page.get_by_role("heading", name="Videos in MP3 umwandeln")).to_be_visible()
    facts["german"] = {
        "lang": page.evaluate("document.documentElement.lang"),
        "settings": page.locator("#settings-title").inner_text(),
        "trim": page.locator("#trim-help").inner_text(),
    }
    page.get_by_text("Erweitert").click()
    accessible(page, "convert, phone, light, German")
    facts["phone_light_overflow"] = page.evaluate(
        "document.documentElement.scrollWidth > screen.width"
    )
    shot(page, "convert-phone-light")
    page.locator("#language").select_option("en")
    expect(page.get_by_role("heading", name="Convert videos to MP3")).to_be_visible()
    facts["german"]["back_in_english"] = page.evaluate("document.documentElement.lang")
    context.close()


def main():
    facts["jobs"] = int(sys.argv[1])
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=os.environ["CHROMIUM"])
        context = browser.new_context(viewport=DESKTOP, accept_downloads=True)
        page = context.new_page()
        choosers = []
        page.on("filechooser", lambda chooser: choosers.append(chooser))
        problems = []
        page.on("pageerror", lambda error: problems.append(str(error)))
        # Refusals the story provokes (401s) are logged as failed loads; anything else counts,
        # a policy violation above all.
        page.on(
            "console",
            lambda m: m.type == "error"
            and not m.text.startswith("Failed to load resource")
            and problems.append(m.text),
        )
        page.goto(BASE)
        shot(page, "sign-in-desktop")
        accessible(page, "sign-in")
        assert sign_in(page, "not the password") is None
        # The page shows the sentence a moment after the answer arrives.
        expect(page.locator("#sign-in-problem")).not_to_have_text("")
        facts["wrong_password"] = page.locator("#sign-in-problem").inner_text()
        token = sign_in(page)
        expect(page.get_by_role("heading", name="Convert videos to MP3")).to_be_visible()
        keyboard(page, choosers)
        convert_and_download(page)
        cancel_and_fail(page)
        history(page)
        account(page)
        sessions_end(page, token)
        phone(browser)
        facts["page_problems"] = problems
        browser.close()
    print(json.dumps(facts))


main()
