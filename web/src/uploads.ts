// One row per dropped file: checked before it is sent, uploaded resumably (tus) with its bar
// and rate, then followed live to its end, with its download, share link and cancel buttons.
import * as tus from "tus-js-client";
import { type JobEvent, follow } from "./events";
import { accessToken, api } from "./session";
import { bytes, el, saveBlob, seconds } from "./ui";

/** The extensions the gateway accepts by default (`ALLOWED_EXTENSIONS`). */
const EXTENSIONS = ["mp4", "m4v", "mov", "avi", "mkv", "webm"];
/** Bytes per request: big enough to be fast, small enough to pass proxies' body limits. */
const CHUNK = 32 * 1024 * 1024;

/** The largest upload the server takes (`Tus-Max-Size`), asked once. */
let maxSize: Promise<number> | null = null;
function largest(): Promise<number> {
  maxSize ??= fetch("/uploads", { method: "OPTIONS" }).then((response) =>
    Number(response.headers.get("Tus-Max-Size") ?? Infinity),
  );
  return maxSize;
}

/** Why `file` cannot be sent, by the server's own rules; null when it can. */
export async function refusal(file: File): Promise<string | null> {
  const extension = file.name.includes(".") ? file.name.split(".").pop()!.toLowerCase() : "";
  if (!EXTENSIONS.includes(extension)) {
    return `${extension ? `.${extension}` : "Files without an extension"} files are not accepted; accepted: ${EXTENSIONS.join(", ")}.`;
  }
  if (file.size === 0) return "The file is empty.";
  const limit = await largest();
  if (file.size > limit) return `The file is larger than the ${Math.floor(limit / 1048576)} MB limit.`;
  return null;
}

/** A file's row in the list, from refusal or upload to its MP3. */
export class FileRow {
  readonly node: HTMLLIElement;
  private readonly bar = el("progress", { max: "100", value: "0" });
  private readonly state = el("span", { class: "state" });
  private readonly actions = el("span", { class: "actions" });
  private readonly stop = new AbortController();
  private jobId: string | null = null;

  constructor(private readonly file: File) {
    this.bar.setAttribute("aria-label", `${file.name} progress`);
    this.node = el("li", { class: "file" }, el("span", { class: "name" }, file.name),
      el("span", { class: "size" }, bytes(file.size)), this.bar, this.state, this.actions);
  }

  refuse(why: string): void {
    this.node.classList.add("refused");
    this.bar.remove();
    this.say(`Refused: ${why}`);
  }

  /** Uploads the file with `choices` as its metadata, then follows its job. */
  async send(choices: Record<string, string>): Promise<void> {
    const token = await accessToken();
    const started = performance.now();
    const upload = new tus.Upload(this.file, {
      endpoint: `${location.origin}/uploads`,
      chunkSize: CHUNK,
      retryDelays: [0, 1000, 3000, 5000],
      metadata: { filename: this.file.name, ...choices },
      headers: { Authorization: `Bearer ${token}` },
      onProgress: (sent, total) => {
        this.bar.value = (sent / total) * 100;
        const rate = sent / Math.max((performance.now() - started) / 1000, 0.001);
        this.say(`Uploading ${Math.floor((sent / total) * 100)} % at ${bytes(rate)}/s`);
      },
      onBeforeRequest: async (request) => {
        request.setHeader("Authorization", `Bearer ${await accessToken()}`);
      },
      onSuccess: ({ lastResponse }) => {
        this.jobId = lastResponse.getHeader("Audiomill-Job-Id") ?? null;
        void this.followJob();
      },
      onError: (error) => this.failed(serverSentence(error)),
    });
    upload.start();
  }

  private async followJob(): Promise<void> {
    const jobId = this.jobId;
    if (!jobId) return this.failed("The server named no job for the upload.");
    this.bar.value = 0;
    this.say("Queued");
    this.actions.replaceChildren(this.button("Cancel", () => this.cancel()));
    await follow(jobId, (kind, event) => this.show(kind, event), this.stop.signal);
  }

  private show(kind: string, event: JobEvent): void {
    this.bar.value = event.progress;
    if (kind !== "end") {
      const eta = event.eta_seconds != null ? `, ${seconds(event.eta_seconds)} left` : "";
      const retry = event.error ? ` (trying again: ${event.error})` : "";
      this.say(`${event.step ?? event.status} ${event.progress} %${eta}${retry}`);
      return;
    }
    if (event.status === "completed") {
      this.node.classList.add("done");
      this.say("Done");
      this.actions.replaceChildren(
        this.button("Download MP3", () => this.download()),
        this.button("Copy share link", () => this.copyLink()),
      );
    } else {
      this.failed(event.error ?? `The job was ${event.status}.`);
    }
  }

  private async cancel(): Promise<void> {
    if (!this.jobId) return;
    const { error } = await api.POST("/jobs/{job_id}/cancel", {
      params: { path: { job_id: this.jobId } },
    });
    if (error) this.say(error.message);
  }

  private async download(): Promise<void> {
    const token = await accessToken();
    const response = await fetch(`/download/${this.jobId}`, {
      headers: { Authorization: `Bearer ${token}` },
    });
    if (!response.ok) return this.say(`The download failed (${response.status}).`);
    saveBlob(await response.blob(), this.file.name.replace(/\.[^.]*$/, "") + ".mp3");
  }

  private async copyLink(): Promise<void> {
    const { data, error } = await api.GET("/jobs/{job_id}/link", {
      params: { path: { job_id: this.jobId! } },
    });
    if (!data) return this.say(error?.message ?? "No link.");
    await navigator.clipboard.writeText(data.url).catch(() => undefined);
    this.say(`Link copied (works until ${new Date(data.expires_at).toLocaleString()})`);
  }

  private failed(why: string): void {
    this.node.classList.add("failed");
    this.actions.replaceChildren();
    this.say(`Failed: ${why}`);
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

/** The server's own sentence in a tus error, else the error's. */
function serverSentence(error: Error): string {
  const body = (error as tus.DetailedError).originalResponse?.getBody();
  try {
    return (JSON.parse(body ?? "") as { message: string }).message;
  } catch {
    return error.message;
  }
}
