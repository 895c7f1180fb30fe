// What a reload (or Back, or a new tab) left behind, found again: the jobs still converting,
// followed live with their cancel and ZIP, and the uploads left unfinished, which go on from
// where they stopped when the same file is dropped again (tus-js-client keeps each one's
// address in the browser's storage until it is whole).
import { t } from "./i18n";
import { accessToken, api } from "./session";
import { byId, bytes, el } from "./ui";
import { DropGroup, UPLOAD_WHOLE } from "./uploads";

let shown = false;

/** Shows, once per page, what is still under way from before it was loaded. */
export async function showLeftBehind(): Promise<void> {
  if (shown) return;
  shown = true;
  await Promise.all([followRunning(), listUnfinished()]);
}

/** The jobs queued or converting, newest on top, grouped by the drop they came in. */
async function followRunning(): Promise<void> {
  const { data } = await api.GET("/jobs", {
    params: { query: { status: "in_progress", limit: 100 } },
  });
  const groups = new Map<string, DropGroup>();
  for (const job of (data?.jobs ?? []).reverse()) {
    const key = job.batch_id ?? job.job_id;
    let group = groups.get(key);
    if (!group) {
      group = new DropGroup(job.batch_id ?? undefined);
      groups.set(key, group);
      byId("uploads").prepend(group.node);
    }
    group.follow(job);
  }
}

/** An upload tus-js-client keeps in the browser's storage until it is whole. */
interface KeptUpload {
  key: string;
  name: string;
  size: number;
  url: string;
}

function keptUploads(): KeptUpload[] {
  const kept: KeptUpload[] = [];
  for (let i = 0; i < localStorage.length; i++) {
    const key = localStorage.key(i);
    if (!key?.startsWith("tus::")) continue;
    try {
      const entry = JSON.parse(localStorage.getItem(key) ?? "") as {
        size: number;
        metadata?: { filename?: string };
        uploadUrl?: string;
      };
      if (entry.uploadUrl) {
        kept.push({ key, name: entry.metadata?.filename ?? "a file", size: entry.size, url: entry.uploadUrl });
      }
    } catch {
      localStorage.removeItem(key);
    }
  }
  return kept;
}

/** Each unfinished upload the server still has, with how much of it was sent; the ones it no
 * longer has are forgotten. */
async function listUnfinished(): Promise<void> {
  const list = byId("unfinished-list");
  for (const upload of keptUploads()) {
    const answer = await tus("HEAD", upload.url);
    if (!answer?.ok) {
      if (answer && answer.status < 500) localStorage.removeItem(upload.key);
      continue;
    }
    const offset = Number(answer.headers.get("Upload-Offset") ?? 0);
    const percent = Math.floor((offset / Math.max(upload.size, 1)) * 100);
    const forget = el("button", { type: "button" }, t("unfinished.forget"));
    const said = t("unfinished.item", { name: upload.name, size: bytes(upload.size), percent });
    const item = el("li", {}, `${said} `, forget);
    // Dropped again and sent whole: no longer unfinished.
    addEventListener(UPLOAD_WHOLE, (event) => {
      if ((event as CustomEvent<string>).detail !== upload.url) return;
      item.remove();
      byId("unfinished").hidden = list.childElementCount === 0;
    });
    forget.addEventListener("click", () => {
      void tus("DELETE", upload.url).then(() => {
        localStorage.removeItem(upload.key);
        item.remove();
        byId("unfinished").hidden = list.childElementCount === 0;
      });
    });
    list.append(item);
  }
  byId("unfinished").hidden = list.childElementCount === 0;
}

async function tus(method: "HEAD" | "DELETE", url: string): Promise<Response | null> {
  const token = await accessToken();
  return fetch(url, {
    method,
    headers: { "Tus-Resumable": "1.0.0", Authorization: `Bearer ${token}` },
  }).catch(() => null);
}
