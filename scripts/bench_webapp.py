"""The web app's first load in headless Chromium: bytes over the wire and time to interactive.

    bench_webapp.py BASE_URL CHROMIUM_PATH

Opens BASE_URL/ five times, each in a fresh browser context (an empty cache), and prints the
median of "kilobytes-transferred milliseconds-to-interactive": every response's transferSize
(headers and compressed bodies, as the browser's Resource Timing counts them), and the time
from navigation to the sign-in form shown by the app's script, ready for input.
"""

import statistics
import sys

from playwright.sync_api import sync_playwright

BASE, CHROMIUM = sys.argv[1], sys.argv[2]
MEASURE = """() => {
    const entries = [...performance.getEntriesByType("navigation"),
                     ...performance.getEntriesByType("resource")];
    return [entries.reduce((sum, e) => sum + e.transferSize, 0), performance.now()];
}"""

with sync_playwright() as playwright:
    browser = playwright.chromium.launch(executable_path=CHROMIUM)
    runs = []
    for _ in range(5):
        context = browser.new_context()
        page = context.new_page()
        page.goto(BASE + "/", wait_until="commit")
        page.wait_for_selector("#sign-in:not([hidden]) input[name=email]")
        runs.append(page.evaluate(MEASURE))
        context.close()
    browser.close()

kilobytes = statistics.median(size for size, _ in runs) / 1024
millis = statistics.median(ms for _, ms in runs)
print(f"{kilobytes:.1f} {millis:.0f}")
