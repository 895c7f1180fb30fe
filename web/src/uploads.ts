// One row per dropped file: checked before it is sent, uploaded resumably (tus) with its bar
// and rate, then followed live to its end, with its download, share link and cancel buttons.
import * as tus from "tus-js-client";
import { type JobEvent, follow } from "./events";
import { accessToken, api } from "./session";
import { attachmentName, bytes, el, saveBlob, saveUrl } from "./ui";
import { type Key, language, t } from "./i18n";
import { clock, failureText, progressText, settingsText, waitingText } from "./words";

/** Bytes per request: big enough to be fast, small enough to pass proxies' body limits. */
const CHUNK = 32 * 1024 * 1024;
/** Waits between tries of a request that failed (the server down, a connection cut): about
 * two minutes of patience, as an outage of the conversion service may last. */
const RETRY_DELAYS = [0, 1000, 3000, 5000, 10000, 20000, 30000, 60000];

/** The event sent (on `window`, its detail the upload's address) when an upload is whole. */
export const UPLOAD_WHOLE = "audiomill:upload-whole";

/** What the server lets this account send, read from `/me` once per drop: the accepted
 * extensions, the largest file, the room the storage quota leaves (null: no quota), and how
 * many files may be on their way at once. */
interface Allowance {
  accepted: string[];
  largest: number;
  room: number | null;
  atOnce: number;
}

/** Files on their way to the server at once, over every drop: as many as the account may
 * upload at once (and keep unfinished); the others wait their turn in the order dropped. */
class Turns {
  private sending = 0;
  private readonly waiting: (() => void)[] = [];
  private limit = 1;

  /** Waits for a turn under `limit` (else the last one given); the function to call when the
   * file's upload is over. */
  async take(limit?: number): Promise<() => void> {
    if (limit !== undefined) this.limit = Math.max(1, limit);
    if (this.sending >= this.limit) await new Promise<void>((go) => this.waiting.push(go));
    this.sending += 1;
    let given = false;
    return () => {
      if (given) return;
      given = true;
      this.sending -= 1;
      if (this.sending < this.limit) this.waiting.shift()?.();
    };
  }
}

const turns = new Turns();

/** Files dropped and not yet sent whole (checked, waiting or uploading): leaving the page
 * now would lose them, so the browser asks first. */
let unsent = 0;
addEventListener("beforeunload", (event) => {
  if (unsent > 0) event.preventDefault();
});

async function allowance(): Promise<Allowance | null> {
  const { data } = await api.GET("/me");
  if (!data) return null; // The server will say why itself.
  return {
    accepted: data.uploads.allowed_extensions,
    largest: data.uploads.max_file_bytes,
    room: data.quota.storage_remaining_bytes ?? null,
    atOnce: Math.min(data.uploads.max_uploads_in_progress, data.uploads.max_unfinished_uploads),
  };
}

/** Why `file` cannot be sent under `allowed` (unknown: the server will say); null when it can. */
function refusal(file: File, allowed: Allowance | null): string | null {
  if (!allowed) return null;
  const { accepted, largest, room } = allowed;
  const extension = file.name.includes(".") ? file.name.split(".").pop()!.toLowerCase() : "";
  if (!accepted.includes(extension)) {
    const list = accepted.join(", ");
    return extension
      ? t("refuse.extension", { extension, accepted: list })
      : t("refuse.noExtension", { accepted: list });
  }
  if (file.size === 0) return t("refuse.empty");
  if (file.size > largest) return t("refuse.tooLarge", { limit: bytes(largest) });
  if (room != null && file.size > room) {
    return t("refuse.quota", { room: bytes(room) });
  }
  return null;
}

/** A file's row in the list, from refusal or upload to its MP3. */
export class FileRow {
  readonly node: HTMLLIElement;
  /** Settles when the file's job has ended (or the file never became one): whether it completed. */
  readonly ended: Promise<boolean>;
  private end: (completed: boolean) => void = () => undefined;
  private readonly bar = el("progress", { max: "100", value: "0" });
  private readonly state = el("span", { class: "state" });
  private readonly actions = el("span", { class: "actions" });
  private readonly stop = new AbortController();
  private jobId: string | null = null;
  /** The output's format (its extension), once the finished job's status tells it. */
  private format = "mp3";

  /** The row of a file named `name`, of `size` bytes (a file dropped, or the source of a job
   * followed again; `null` for a link, whose size only its server knows). */
  constructor(private readonly name: string, size: number | null) {
    this.ended = new Promise((resolve) => (this.end = resolve));
    this.bar.setAttribute("aria-label", `${name} progress`);
    this.node = el("li", { class: "file" }, el("span", { class: "name" }, name),
      el("span", { class: "size" }, size === null ? t("row.link") : bytes(size)), this.bar,
      this.state, this.actions);
  }

  /** Checked and accepted, waiting for Convert. */
  readyToConvert(): void {
    this.say(t("row.ready"));
  }

  /** Checked and accepted, waiting for its turn to be sent. */
  waiting(): void {
    this.say(t("row.waiting"));
  }

  refuse(why: string): void {
    this.node.classList.add("refused");
    this.bar.remove();
    this.say(t("row.refused", { why }));
    this.end(false);
  }

  /** Uploads the file with `choices` as its metadata, into `batch`, then follows its job.
   * Settles when the upload is over, sent whole or failed (a failed one can be tried again,
   * from where it stopped, and settles again). */
  send(file: File, choices: Record<string, string>, batch: string): Promise<void> {
    return new Promise((over) => void this.start(file, choices, batch, over));
  }

  /** Follows job `jobId` to its end (a job started before the page was loaded). */
  async follow(jobId: string): Promise<void> {
    this.jobId = jobId;
    await this.followJob();
  }

  private async start(
    file: File,
    choices: Record<string, string>,
    batch: string,
    over: () => void,
  ): Promise<void> {
    const started = performance.now();
    const upload = new tus.Upload(file, {
      endpoint: `${location.origin}/uploads`,
      chunkSize: CHUNK,
      retryDelays: RETRY_DELAYS,
      removeFingerprintOnSuccess: true,
      metadata: { filename: file.name, batch_id: batch, ...choices },
      onProgress: (sent, total) => {
        this.bar.value = (sent / total) * 100;
        const rate = sent / Math.max((performance.now() - started) / 1000, 0.001);
        this.say(t("row.uploading", { percent: Math.floor((sent / total) * 100), rate: bytes(rate) }));
      },
      // The token is set here only: an XHR joins a header set twice into one list.
      onBeforeRequest: async (request) => {
        request.setHeader("Authorization", `Bearer ${await accessToken()}`);
      },
      onSuccess: ({ lastResponse }) => {
        over();
        void this.uploaded(lastResponse.getHeader("Audiomill-Job-Id"), upload.url);
      },
      onError: (error) => {
        over();
        this.failed(serverSentence(error), () => this.retry(upload));
      },
      // A service that is down for a moment is waited out; the row says so meanwhile.
      onShouldRetry: (error, attempt, options) => {
        const retry = tus.defaultOptions.onShouldRetry?.(error, attempt, options) ?? false;
        if (retry && error.originalResponse?.getStatus() === 503) {
          this.say(waitingText(serverSentence(error)));
        }
        return retry;
      },
    });
    // The same file dropped again (after a reload, or a failure) goes on from where its
    // upload stood, as the browser's storage remembers it.
    const [previous] = await upload.findPreviousUploads().catch(() => []);
    if (previous) {
      upload.resumeFromPreviousUpload(previous);
      this.say(t("row.resuming"));
    }
    upload.start();
  }

  /** The same upload again, from where the server says it stands, when a turn comes. */
  private async retry(upload: tus.Upload): Promise<void> {
    this.node.classList.remove("failed");
    this.actions.replaceChildren();
    this.say(t("row.waiting"));
    const done = await turns.take();
    this.say(t("row.sending"));
    await new Promise<void>((over) => {
      upload.options.onSuccess = ({ lastResponse }) => {
        over();
        void this.uploaded(lastResponse.getHeader("Audiomill-Job-Id"), upload.url);
      };
      upload.options.onError = (error) => {
        over();
        this.failed(serverSentence(error), () => this.retry(upload));
      };
      upload.start();
    });
    done();
  }

  /** The upload is whole: its job (named by the last answer, or asked for), followed. */
  private async uploaded(jobId: string | undefined, url: string | null): Promise<void> {
    if (url) dispatchEvent(new CustomEvent(UPLOAD_WHOLE, { detail: url }));
    this.jobId = jobId ?? (await jobOf(url, (why) => this.say(waitingText(why))));
    await this.followJob();
  }

  private async followJob(): Promise<void> {
    const jobId = this.jobId;
    if (!jobId) return this.failed(t("row.noJob"));
    this.bar.value = 0;
    this.say(t("step.waiting"));
    this.actions.replaceChildren(this.button(t("button.cancel"), () => this.cancel()));
    await follow(jobId, (kind, event) => this.show(kind, event), this.stop.signal);
  }

  private show(kind: string, event: JobEvent): void {
    this.bar.value = event.progress;
    if (kind !== "end") {
      const state = progressText(event);
      this.say(event.error ? t("row.retrying", { state, why: event.error }) : state);
      return;
    }
    if (event.status === "completed") {
      this.node.classList.add("done");
      this.say(t("row.done"));
      void this.sayMp3();
      this.actions.replaceChildren(
        this.button(t("button.downloadMp3"), () => this.download()),
        this.button(t("button.copyLink"), () => this.copyLink()),
      );
      this.end(true);
    } else if (event.status === "cancelled") {
      this.node.classList.add("cancelled");
      this.actions.replaceChildren();
      this.say(t("row.cancelled"));
      this.end(false);
    } else {
      void this.sayFailure(event.error ?? t("row.ended", { status: t(`status.${event.status}` as Key) }));
    }
  }

  /** The job failed: why, in the catalogue's words when its failure type has them. */
  private async sayFailure(sentence: string): Promise<void> {
    this.failed(sentence);
    const { data } = await api.GET("/status/{job_id}", {
      params: { path: { job_id: this.jobId! } },
    });
    if (data?.failure_type) this.say(t("row.failed", { why: failureText(data.failure_type, sentence) }));
  }

  /** Done, with the MP3's length and size once the server tells them. */
  private async sayMp3(): Promise<void> {
    const { data } = await api.GET("/status/{job_id}", {
      params: { path: { job_id: this.jobId! } },
    });
    if (data) this.format = data.options.format ?? "mp3";
    if (data?.audio_seconds != null && data.mp3_bytes != null) {
      this.say(t("row.doneWith", { length: clock(data.audio_seconds), size: bytes(data.mp3_bytes) }));
    }
  }

  private async cancel(): Promise<void> {
    if (!this.jobId) return;
    const { error } = await api.POST("/jobs/{job_id}/cancel", {
      params: { path: { job_id: this.jobId } },
    });
    if (error) this.say(error.message);
  }

  /** The MP3 through a signed link: the browser streams it to disk, however long it is. */
  private async download(): Promise<void> {
    const link = await this.link();
    if (link) saveUrl(link.url, `${this.name.replace(/\.[^.]*$/, "")}.${this.format}`);
  }

  private async copyLink(): Promise<void> {
    const link = await this.link();
    if (!link) return;
    const until = new Date(link.expires_at).toLocaleString(language());
    // The clipboard needs a secure context; on plain HTTP the link is shown to copy by hand.
    const copied = await navigator.clipboard?.writeText(link.url).then(() => true, () => false);
    if (copied) return this.say(t("row.linkCopied", { until }));
    const field = el("input", { readonly: "", value: link.url, "aria-label": t("row.linkLabel") });
    this.state.replaceChildren(`${t("row.linkShown", { until })} `, field);
    field.select();
  }

  private async link(): Promise<{ url: string; expires_at: string } | null> {
    const { data, error } = await api.GET("/jobs/{job_id}/link", {
      params: { path: { job_id: this.jobId! } },
    });
    if (!data) this.say(error?.message ?? t("row.noLink"));
    return data ?? null;
  }

  /** The file failed; with `retry`, a button offers to try it again. */
  private failed(why: string, retry?: () => Promise<void>): void {
    this.node.classList.add("failed");
    this.actions.replaceChildren(...(retry ? [this.button(t("button.tryAgain"), retry)] : []));
    this.say(t("row.failed", { why }));
    this.end(false);
  }

  private say(text: string): void {
    this.state.textContent = text;
  }

  private button(label: string, action: () => Promise<void>): HTMLButtonElement {
    const button = el("button", { type: "button" }, label);
    button.addEventListener("click", () => void action());
    return button;
  }
}

/** The job of a complete upload whose last request could not start it (the conversion
 * service was down): asked of the upload with `HEAD`, which starts it, until it is named or
 * the patience runs out; `waiting` hears the server's reason each time it is still down. */
async function jobOf(url: string | null, waiting: (why: string) => void): Promise<string | null> {
  for (const delay of RETRY_DELAYS) {
    if (!url) return null;
    await new Promise((resolve) => setTimeout(resolve, delay));
    const token = await accessToken();
    const answer = await fetch(url, {
      method: "HEAD",
      headers: { "Tus-Resumable": "1.0.0", Authorization: `Bearer ${token}` },
    }).catch(() => null);
    const job = answer?.headers.get("Audiomill-Job-Id");
    if (job) return job;
    if (answer && answer.status !== 503 && !answer.ok) return null;
    waiting(t(answer ? "row.serviceDown" : "row.unreachable"));
  }
  return null;
}

/** The server's own sentence in a tus error, else the error's. */
function serverSentence(error: Error): string {
  const body = (error as tus.DetailedError).originalResponse?.getBody();
  try {
    return (JSON.parse(body ?? "") as { message: string }).message;
  } catch {
    return error.message;
  }
}

/** The files of one drop: sent as one batch, downloaded together as a ZIP once they end. */
export class DropGroup {
  readonly node = el("li", { class: "group" });
  private readonly list = el("ul", { class: "files" });
  private readonly summary = el("p", { class: "summary", hidden: "" });
  private readonly start = el("button", { type: "button", hidden: "" });
  private readonly zip = el("button", { type: "button", hidden: "" }, t("group.zip"));
  private allowed: Promise<Allowance | null> | null = null;
  private rows: FileRow[] = [];
  /** The files checked and accepted, until Convert sends them. */
  private readonly ready: { row: FileRow; file: File }[] = [];
  private readonly checks: Promise<void>[] = [];

  /** A new drop's group, converted with what `settings` says when Convert is pressed; or
   * (given `batch`) the group of a batch's jobs followed again. */
  constructor(
    private readonly batch: string = newBatchId(),
    private readonly settings: () => Record<string, string> = () => ({}),
  ) {
    this.start.addEventListener("click", () => void this.convert());
    this.zip.addEventListener("click", () => void this.download());
    this.node.append(this.list, this.summary, this.start, this.zip);
  }

  /** Checks `file` by the account's rules: refused (saying why), or ready to convert. */
  add(file: File): void {
    unsent += 1;
    const row = this.row(file.name, file.size);
    this.checks.push(this.check(row, file));
  }

  private async check(row: FileRow, file: File): Promise<void> {
    // The account's limits, read once for the whole drop.
    this.allowed ??= allowance();
    const allowed = await this.allowed;
    const why = refusal(file, allowed);
    if (why) {
      unsent -= 1;
      return row.refuse(why);
    }
    // The files of one drop share the quota's room: each one sent takes its part.
    if (allowed?.room != null) allowed.room -= file.size;
    row.readyToConvert();
    this.ready.push({ row, file });
    const count = this.ready.length;
    this.start.textContent = count === 1 ? t("group.convert.one") : t("group.convert.many", { count });
    this.start.hidden = false;
  }

  /** Sends the files ready with the settings as they are now, a few at a time. */
  private async convert(): Promise<void> {
    await Promise.all(this.checks);
    this.start.remove();
    const choices = this.settings();
    this.summary.textContent = settingsText(choices);
    this.summary.hidden = false;
    const atOnce = (await this.allowed)?.atOnce ?? 1;
    await Promise.all(
      this.ready.map(async ({ row, file }) => {
        row.waiting();
        try {
          const done = await turns.take(atOnce);
          await row.send(file, choices, this.batch);
          done();
        } finally {
          unsent -= 1;
        }
      }),
    );
  }

  /** Has the server fetch the video at `link` and convert it with the settings as they are
   * now, then follows its job; a refused link says why on its row. */
  async addLink(link: string): Promise<void> {
    const row = this.row(linkName(link), null);
    row.waiting();
    // Where the MP3 also goes is the import's own field, not an output choice.
    const { export_to: exportTo, ...options } = this.settings();
    const { data, error } = await api.POST("/imports", {
      body: { urls: [link], options, export_to: exportTo || undefined },
      headers: { "Idempotency-Key": newBatchId() },
    });
    if (!data) return row.refuse(error?.message ?? t("row.noJob"));
    await row.follow(data.job_id);
  }

  /** Adds a row that follows `job`, started before the page was loaded, to its end. */
  follow(job: { job_id: string; filename: string; size_bytes: number }): void {
    const row = this.row(job.filename, job.size_bytes);
    void row.follow(job.job_id);
  }

  private row(name: string, size: number | null): FileRow {
    const row = new FileRow(name, size);
    this.rows.push(row);
    this.list.append(row.node);
    void this.offerZip();
    return row;
  }

  /** Offers the ZIP once every file has ended, if more than one completed. */
  private async offerZip(): Promise<void> {
    const rows = this.rows.length;
    const completed = (await Promise.all(this.rows.map((row) => row.ended))).filter(Boolean);
    if (rows === this.rows.length) this.zip.hidden = completed.length < 2;
  }

  private async download(): Promise<void> {
    await downloadZip(this.batch, this.zip);
  }
}

/** Saves the finished MP3s of `batch` as one ZIP, named as the server names it; a problem is
 * said after `near`. */
export async function downloadZip(batch: string, near: HTMLElement): Promise<void> {
  const token = await accessToken();
  const response = await fetch(`/batches/${batch}/download`, {
    headers: { Authorization: `Bearer ${token}` },
  });
  if (!response.ok) {
    near.after(el("p", { class: "problem", role: "alert" }, t("group.zipFailed", { status: response.status })));
    return;
  }
  const name = attachmentName(response.headers.get("Content-Disposition")) ?? "audiomill.zip";
  saveBlob(await response.blob(), name);
}

/** What a link's row is named: the file its path ends in, or its host; never its
 * credentials or query. */
export function linkName(link: string): string {
  try {
    const url = new URL(link);
    const last = url.pathname.split("/").filter(Boolean).pop();
    return last ? decodeURIComponent(last) : url.hostname;
  } catch {
    return link;
  }
}

/** A random UUID (v4): `crypto.randomUUID` exists only on HTTPS, and the app runs on plain LANs too. */
function newBatchId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
