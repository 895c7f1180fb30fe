"""Verifies recorded webhook requests with `standardwebhooks`, the reference implementation of
the Standard Webhooks specification (not the code that signed them).

Usage: verify_webhook.py SECRET < RECORDS: RECORDS is JSON lines {"headers", "body"} as
webhook_receiver.py writes them; prints one JSON line per record, the verified payload, or
exits 1 naming the first record that does not verify.
"""

import json
import sys

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

webhook = Webhook(sys.argv[1])
for number, line in enumerate(sys.stdin, 1):
    record = json.loads(line)
    try:
        payload = webhook.verify(record["body"], record["headers"])
    except WebhookVerificationError as error:
        print(f"record {number} does not verify: {error}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps(payload))
