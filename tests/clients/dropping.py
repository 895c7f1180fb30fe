"""What the browser scripts share: dropping files on the web app's drop zone at once, as a
person drags them (or a folder) there."""

import base64


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
