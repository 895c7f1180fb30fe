// The web app: sign in, drop videos, watch them convert, download the MP3s; the history of
// one's jobs; the account (usage, API keys, password, webhooks). Views are sections of
// index.html shown by the URL's fragment.
import type { components } from "./api";
import { chosen, setUpChoices } from "./choices";
import { loadAccount, setUpAccount } from "./account";
import { loadConnections, offerExports, setUpStorage } from "./storage";
import { loadWatches, setUpWatches } from "./watches";
import { resetToken, setUpPasswordReset } from "./password";
import { loadAdmin, setUpAdmin } from "./admin";
import { joining, prepareJoin, setUpJoin } from "./join";
import { offerSignIn, showSignOnProblem } from "./sign_on";
import { api, forgetUploads, resumed, signIn, signOut, signedIn, whenExpired } from "./session";
import { byId, bytes, detached, el, saveUrl } from "./ui";
import { showLeftBehind } from "./resume";
import { DropGroup, downloadZip } from "./uploads";
import { follow } from "./events";
import { droppedFiles, pickedFiles } from "./folders";
import { type Key, LANGUAGES, type Language, language, t, translatePage, useLanguage } from "./i18n";
import { clock, failureText, progressText } from "./words";

const VIEWS = ["sign-in", "reset", "join", "convert", "history", "account", "admin"] as const;
type View = (typeof VIEWS)[number];

function show(view: View): void {
  for (const name of VIEWS) byId(name).hidden = name !== view;
  byId("nav").hidden = view === "sign-in" || view === "reset" || view === "join";
  if (view === "sign-in") void offerSignIn();
  if (view === "join") prepareJoin();
  if (view === "convert") {
    void describeAccepted();
    void showLeftBehind();
    void offerExports();
  }
  if (view === "history") void loadHistory(true);
  if (view === "account") {
    void loadAccount();
    void loadConnections();
    void loadWatches();
  }
  if (view === "admin") void loadAdmin(true);
}

/** How people know each container the server may accept. */
const CONTAINER_NAMES: Record<string, string> = {
  mp4: "MP4", m4v: "M4V", mov: "MOV", avi: "AVI", mkv: "MKV", webm: "WebM",
};

/** The drop zone and the file chooser name what this server accepts, as `/me` says (which
 * also says whether the admin page is the person's). */
async function describeAccepted(): Promise<void> {
  const { data } = await api.GET("/me");
  if (!data) return;
  byId("nav-admin").hidden = !data.admin;
  const accepted = data.uploads.allowed_extensions;
  byId("drop-types").textContent = accepted
    .map((extension) => CONTAINER_NAMES[extension] ?? extension.toUpperCase())
    .join(", ");
  byId<HTMLInputElement>("files").accept = accepted.map((extension) => `.${extension}`).join(",");
}

function route(): void {
  if (resetToken()) return show("reset");
  if (joining()) return show("join");
  if (!signedIn()) return show("sign-in");
  const asked = location.hash.replace(/^#\//, "") as View;
  const signedOut: View[] = ["sign-in", "reset", "join"];
  const signedInView = VIEWS.includes(asked) && !signedOut.includes(asked);
  show(signedInView ? asked : "convert");
}

/** Signs in with the form's e-mail and password; its sentence says why not. */
async function submitSignIn(form: HTMLFormElement, event: SubmitEvent): Promise<void> {
  event.preventDefault();
  const data = new FormData(form);
  const text = (name: string) => {
    const value = data.get(name);
    return typeof value === "string" ? value : "";
  };
  const problem = await signIn(text("email"), text("password"));
  byId("sign-in-problem").textContent = problem ?? "";
  if (!problem) {
    form.reset();
    route();
  }
}

function setUpSignIn(): void {
  const form = byId<HTMLFormElement>("sign-in-form");
  form.addEventListener("submit", detached((event: SubmitEvent) => submitSignIn(form, event)));
  byId("sign-out").addEventListener(
    "click",
    detached(async () => {
      await signOut();
      // A fresh page: nothing of the session (files, history, uploads under way) stays on it.
      location.replace("/");
    }),
  );
  whenExpired(() => {
    forgetUploads();
    byId("sign-in-problem").textContent = t("signIn.ended");
    show("sign-in");
  });
}

function setUpDrop(): void {
  const drop = byId("drop");
  const input = byId<HTMLInputElement>("files");
  const folder = byId<HTMLInputElement>("folder");
  const take = (files: File[]) => {
    if (!files.length) return;
    const form = byId<HTMLFormElement>("choices");
    const group = new DropGroup(undefined, () => chosen(form));
    byId("uploads").prepend(group.node);
    for (const file of files) group.add(file);
  };
  // Chromium opens a file chooser on Space only; Enter works as on a button too.
  for (const chooser of [input, folder]) {
    chooser.addEventListener("keydown", (event) => {
      if (event.key !== "Enter") return;
      event.preventDefault();
      if ("showPicker" in chooser) chooser.showPicker();
      else (chooser as HTMLInputElement).click();
    });
  }
  input.addEventListener("change", () => {
    take(Array.from(input.files ?? []));
    input.value = "";
  });
  folder.addEventListener("change", () => {
    if (folder.files) take(pickedFiles(folder.files));
    folder.value = "";
  });
  const linkForm = byId<HTMLFormElement>("link-form");
  linkForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const field = byId<HTMLInputElement>("link");
    const link = field.value.trim();
    if (!link) return;
    const form = byId<HTMLFormElement>("choices");
    const group = new DropGroup(undefined, () => chosen(form));
    byId("uploads").prepend(group.node);
    void group.addLink(link);
    field.value = "";
  });
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    if (event.dataTransfer) void droppedFiles(event.dataTransfer).then(take);
  });
}

let cursor: string | null = null;
/** The batch of the history's last row, so that a drop's jobs share one heading. */
let lastBatch: string | null = null;
/** Stops the live status of the rows shown, when the history is loaded afresh. */
let following = new AbortController();

type StatusFilter = components["schemas"]["StatusFilter"];
const STATUS_FILTERS: readonly StatusFilter[] = [
  "in_progress", "queued", "running", "completed", "failed", "cancelled",
];

/** The history's status filter, if it names one the API knows. */
function statusFilter(): StatusFilter | undefined {
  const chosen = byId<HTMLSelectElement>("history-status").value;
  return STATUS_FILTERS.find((status) => status === chosen);
}

async function loadHistory(fresh: boolean): Promise<void> {
  const rows = byId("history-rows");
  if (fresh) {
    rows.replaceChildren();
    cursor = null;
    lastBatch = null;
    following.abort();
    following = new AbortController();
  }
  const { data, error } = await api.GET("/jobs", {
    params: { query: { limit: 20, cursor: cursor ?? undefined, status: statusFilter() } },
  });
  byId("history-problem").textContent = error?.message ?? "";
  if (!data) return;
  for (const job of data.jobs) {
    const remove = el("button", { type: "button" }, t("button.delete"));
    remove.addEventListener(
      "click",
      detached(async () => {
        const running = job.status === "queued" || job.status === "running";
        const question = running
          ? t("history.deleteRunning", { name: job.filename })
          : job.status === "completed"
            ? t("history.deleteDone", { name: job.filename })
            : t("history.delete", { name: job.filename });
        if (!confirm(question)) return;
        const { error } = await api.DELETE("/jobs/{job_id}", {
          params: { path: { job_id: job.job_id } },
        });
        byId("history-problem").textContent = error?.message ?? "";
        if (!error) void loadHistory(true);
      }),
    );
    const actions = el("td", { class: "actions" }, remove);
    if (job.status === "completed") {
      actions.prepend(downloadButton(job.job_id, job.filename, job.format ?? "mp3"));
    }
    // A heading for a drop of several files (one file alone needs none).
    const together = data.jobs.filter((other) => other.batch_id === job.batch_id).length;
    if (job.batch_id && job.batch_id !== lastBatch && together > 1) {
      rows.append(dropHeading(job.batch_id));
    }
    lastBatch = job.batch_id ?? null;
    rows.append(el("tr", {}, el("td", {}, job.filename), statusCell(job, actions),
      el("td", {}, new Date(job.created_at).toLocaleString(language())), actions));
  }
  cursor = data.next_cursor ?? null;
  byId("history-more").hidden = cursor === null;
}

type JobSummary = components["schemas"]["JobSummary"];

/** The heading of the jobs of one drop, with their ZIP. */
function dropHeading(batch: string): HTMLTableRowElement {
  const zip = el("button", { type: "button" }, t("group.zip"));
  zip.addEventListener("click", () => void downloadZip(batch, byId("history-problem")));
  return el("tr", { class: "drop-heading" },
    el("th", { colspan: "4", scope: "rowgroup" }, `${t("history.drop")} `, zip));
}

/** A job's status as the history shows it: a completed one with its MP3's length and size, a
 * failed one with the reason (asked of `/status`, which has the sentence), a running one
 * followed live, with its Cancel among `actions`. */
function statusCell(job: JobSummary, actions: HTMLElement): HTMLTableCellElement {
  const status = (name: string) => t(`status.${name}` as Key);
  const cell = el("td", {}, status(job.status));
  if (job.status === "queued" || job.status === "running") {
    const cancel = el("button", { type: "button" }, t("button.cancel"));
    cancel.addEventListener("click", () => {
      void api.POST("/jobs/{job_id}/cancel", { params: { path: { job_id: job.job_id } } });
    });
    actions.prepend(cancel);
    void follow(job.job_id, (kind, event) => {
      cell.textContent = kind === "end" ? status(event.status) : progressText(event);
      if (kind === "end") cancel.remove();
    }, following.signal);
  } else if (job.status === "completed" && job.audio_seconds != null && job.mp3_bytes != null) {
    cell.textContent = t("history.completed", {
      status: status(job.status), length: clock(job.audio_seconds), size: bytes(job.mp3_bytes),
    });
  } else if (job.status === "failed") {
    void api
      .GET("/status/{job_id}", { params: { path: { job_id: job.job_id } } })
      .then(({ data }) => {
        if (!data?.error) return;
        const why = failureText(job.failure_type, data.error);
        cell.textContent = t("history.failed", { status: status(job.status), why });
      });
  }
  return cell;
}

/** A button that saves the job's audio (of `format`: its extension) through a signed link. */
function downloadButton(jobId: string, filename: string, format: string): HTMLButtonElement {
  const button = el("button", { type: "button" }, t("button.download"));
  button.addEventListener(
    "click",
    detached(async () => {
      const { data, error } = await api.GET("/jobs/{job_id}/link", {
        params: { path: { job_id: jobId } },
      });
      byId("history-problem").textContent = error?.message ?? "";
      if (data) saveUrl(data.url, `${filename.replace(/\.[^.]*$/, "")}.${format}`);
    }),
  );
  return button;
}

/** The page in the person's language, and the choice of another (kept for later visits). */
function setUpLanguage(): void {
  translatePage(document);
  const select = byId<HTMLSelectElement>("language");
  for (const [code, name] of Object.entries(LANGUAGES)) {
    select.append(el("option", { value: code, lang: code }, name));
  }
  select.value = language();
  select.addEventListener("change", () => {
    useLanguage(select.value as Language);
    // Everything on the page is said again in the new language; the login survives a reload.
    location.reload();
  });
}

setUpLanguage();
setUpSignIn();
setUpDrop();
setUpChoices(byId<HTMLFormElement>("choices"));
setUpAccount();
setUpStorage();
setUpWatches();
setUpAdmin();
setUpPasswordReset(() => show("sign-in"));
setUpJoin(() => show("sign-in"));
byId("history-status").addEventListener("change", () => void loadHistory(true));
byId("history-more").addEventListener("click", () => void loadHistory(false));
window.addEventListener("hashchange", route);
showSignOnProblem();
// A reload (or Back, or a link followed) keeps the login: its session cookie renews it; so
// does single sign-on, which comes back here with the session cookie set.
void resumed().finally(route);
