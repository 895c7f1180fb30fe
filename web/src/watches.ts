// Watched folders (on the account page): a folder of one of your connections whose new
// videos the server converts by itself, listed with their counts, paused, resumed, deleted.
import type { components } from "./api";
import { api } from "./session";
import { byId, detached, el } from "./ui";
import { t } from "./i18n";

type Watch = components["schemas"]["WatchBody"];
type Connection = components["schemas"]["ConnectionBody"];

/** A text field of a form's data ("" when missing). */
function text(data: FormData, name: string): string {
  const value = data.get(name);
  return typeof value === "string" ? value.trim() : "";
}

/** How a watch is named: its name, folder and storage, then where it stands. */
function described(watch: Watch, connections: Connection[]): string[] {
  const storage = watch.directory
    ? t("watches.server")
    : (connections.find((connection) => connection.id === watch.connection_id)?.name ??
      watch.connection_id ??
      "");
  const counts = { jobs: String(watch.jobs), running: String(watch.running) };
  return [
    t("watches.line", {
      name: watch.name,
      folder: watch.directory ?? (watch.prefix || "/"),
      storage,
    }),
    watch.state === "paused" ? t("watches.paused", counts) : t("watches.active", counts),
  ];
}

/** A button that asks the server `act` about the watch, then shows the list again. */
function button(label: string, act: () => Promise<{ error?: { message: string } }>): HTMLElement {
  const pressed = el("button", { type: "button" }, label);
  pressed.addEventListener(
    "click",
    detached(async () => {
      const { error } = await act();
      byId("watch-problem").textContent = error?.message ?? "";
      await loadWatches();
    }),
  );
  return pressed;
}

function line(watch: Watch, connections: Connection[]): HTMLElement {
  const path = { params: { path: { watch_id: watch.id } } };
  const toggle =
    watch.state === "paused"
      ? button(t("watches.resume"), () => api.POST("/watches/{watch_id}/resume", path))
      : button(t("watches.pause"), () => api.POST("/watches/{watch_id}/pause", path));
  const remove = button(t("watches.delete"), () => api.DELETE("/watches/{watch_id}", path));
  const [name, stands] = described(watch, connections);
  const parts: (HTMLElement | string)[] = [
    el("span", { class: "name" }, name),
    " · ",
    el("span", { class: "stands" }, stands),
  ];
  if (watch.trouble) parts.push(" ", el("span", { class: "problem" }, watch.trouble));
  return el("li", { class: "watch" }, ...parts, " ", toggle, " ", remove);
}

/** The connections a watch may read from or write to, as a select's options. */
function offer(select: HTMLSelectElement, connections: Connection[], none?: string): void {
  const kept = select.value;
  select.replaceChildren(
    ...(none === undefined ? [] : [el("option", { value: "" }, none)]),
    ...connections.map((connection) => el("option", { value: connection.id }, connection.name)),
  );
  if (connections.some((connection) => connection.id === kept)) select.value = kept;
}

/** The account page's watches, and the form's choice of connections. */
export async function loadWatches(): Promise<void> {
  const [watches, connections] = await Promise.all([
    api.GET("/watches").then(({ data }) => data?.watches ?? []),
    api.GET("/connections").then(({ data }) => data?.connections ?? []),
  ]);
  byId("watches").replaceChildren(...watches.map((watch) => line(watch, connections)));
  byId("no-watches").hidden = watches.length > 0;
  const form = byId<HTMLFormElement>("watch-form");
  offer(form.elements.namedItem("connection_id") as HTMLSelectElement, connections);
  offer(
    form.elements.namedItem("watch_export_to") as HTMLSelectElement,
    connections,
    t("settings.exportTo.none"),
  );
  form.querySelector("button")!.disabled = connections.length === 0;
  byId("watch-problem").textContent = connections.length === 0 ? t("watches.needsStorage") : "";
}

async function saveWatch(form: HTMLFormElement, event: SubmitEvent): Promise<void> {
  event.preventDefault();
  const data = new FormData(form);
  const optional = (name: string) => text(data, name) || undefined;
  const preset = text(data, "watch_preset");
  const exportTo = optional("watch_export_to");
  const { data: saved, error } = await api.POST("/watches", {
    body: {
      name: text(data, "name"),
      connection_id: text(data, "connection_id"),
      prefix: optional("prefix"),
      options: preset ? { preset } : {},
      export_to: exportTo,
      export_key: exportTo ? optional("watch_export_key") : undefined,
      max_running: Number(text(data, "max_running")) || undefined,
    },
  });
  byId("watch-problem").textContent = error?.message ?? "";
  if (!saved) return;
  form.reset();
  await loadWatches();
}

export function setUpWatches(): void {
  const form = byId<HTMLFormElement>("watch-form");
  form.addEventListener("submit", detached((event: SubmitEvent) => saveWatch(form, event)));
}
