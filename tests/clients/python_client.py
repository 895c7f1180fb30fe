"""Drives a running gateway through the Python client generated from openapi/openapi.json,
as an integrator would, with no edits to the generated code.

Reads AUDIOMILL_URL, AUDIOMILL_EMAIL, AUDIOMILL_PASSWORD and AUDIOMILL_VIDEO; prints one JSON
object with what it saw, for the Rust test to check.
"""

import base64
import json
import os
import time
import uuid

from audiomill_client import AuthenticatedClient, Client
from audiomill_client.api.auth import create_api_key, login, revoke_api_key
from audiomill_client.api.webhooks import list_webhooks
from audiomill_client.api.jobs import (
    download_mp_3,
    get_batch,
    get_job_status,
    list_jobs,
    upload_video,
)
from audiomill_client.api.operations import get_health
from audiomill_client.models import ErrorBody, JobPage, JobStatusBody, NewKey, Scope, UploadVideoBody
from audiomill_client.types import File

url = os.environ["AUDIOMILL_URL"]
email = os.environ["AUDIOMILL_EMAIL"]
password = os.environ["AUDIOMILL_PASSWORD"]
video = os.environ["AUDIOMILL_VIDEO"]
seen = {}

health = get_health.sync(client=Client(base_url=url))
seen["health"] = health.status

basic = base64.b64encode(f"{email}:{password}".encode()).decode()
tokens = login.sync(client=AuthenticatedClient(base_url=url, token=basic, prefix="Basic"))
seen["token_type"] = tokens.token_type
client = AuthenticatedClient(base_url=url, token=tokens.access_token, timeout=60.0)

wrong = login.sync(client=AuthenticatedClient(base_url=url, token="bm9ib2R5Om5vdGhpbmc=", prefix="Basic"))
seen["wrong_login"] = wrong.error.value if isinstance(wrong, ErrorBody) else repr(wrong)

with open(video, "rb") as source:
    body = UploadVideoBody(file=[File(payload=source, file_name=os.path.basename(video), mime_type="video/mp4")])
    accepted = upload_video.sync_detailed(client=client, body=body)
seen["upload_status"] = accepted.status_code.value
job_id = accepted.parsed.job_id
seen["job_id"] = str(job_id)

# Two files in one upload: a batch.
with open(video, "rb") as one, open(video, "rb") as two:
    files = [
        File(payload=one, file_name="one.mp4", mime_type="video/mp4"),
        File(payload=two, file_name="two.mp4", mime_type="video/mp4"),
    ]
    batch = upload_video.sync_detailed(client=client, body=UploadVideoBody(file=files)).parsed
seen["batch_jobs"] = len(batch.jobs)
batch_status = get_batch.sync(batch_id=batch.batch_id, client=client)
seen["batch_listed"] = [job.filename for job in batch_status.jobs]

status = None
deadline = time.time() + 120
while time.time() < deadline:
    status = get_job_status.sync(job_id, client=client)
    assert isinstance(status, JobStatusBody), status
    if status.status.value in ("completed", "failed", "cancelled"):
        break
    time.sleep(0.5)
seen["final_status"] = status.status.value

page = list_jobs.sync(client=client, limit=10)
assert isinstance(page, JobPage), page
seen["listed"] = [str(job.job_id) for job in page.jobs]

mp3 = download_mp_3.sync_detailed(job_id, client=client)
seen["download_status"] = mp3.status_code.value
seen["download_head"] = mp3.content[:3].hex()

missing = get_job_status.sync(uuid.uuid4(), client=client)
seen["missing"] = missing.error.value if isinstance(missing, ErrorBody) else repr(missing)

too_many = list_jobs.sync(client=client, limit=101)
seen["limit_101"] = too_many.error.value if isinstance(too_many, ErrorBody) else repr(too_many)

# An API key with what a script needs, used where a token is, then revoked.
made = create_api_key.sync(client=client, body=NewKey(name="python", scopes=[Scope.JOBSREAD]))
seen["key_prefix"] = made.key[:4]
keyed = AuthenticatedClient(base_url=url, token=made.key, timeout=60.0)
seen["key_lists_jobs"] = list_jobs.sync_detailed(client=keyed, limit=10).status_code.value
webhooks = list_webhooks.sync(client=keyed)
seen["key_webhooks"] = webhooks.error.value if isinstance(webhooks, ErrorBody) else repr(webhooks)
seen["key_revoked"] = revoke_api_key.sync_detailed(made.id, client=client).status_code.value
seen["revoked_key_lists_jobs"] = list_jobs.sync_detailed(client=keyed, limit=10).status_code.value

print(json.dumps(seen))
