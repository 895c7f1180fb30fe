// Your own storage: buckets on S3-compatible servers saved as connections (on the account
// page), and the choice, on the converter's page, of one the MP3s are also written to.
import type { components } from "./api";
import { api } from "./session";
import { byId, detached, el } from "./ui";
import { t } from "./i18n";

type Connection = components["schemas"]["ConnectionBody"];

/** A text field of a form's data ("" when missing). */
function text(data: FormData, name: string): string {
  const value = data.get(name);
  return typeof value === "string" ? value.trim() : "";
}

/** How a connection is named: its name, then bucket, folder and server. */
function described(connection: Connection): string {
  return t("storage.line", {
    name: connection.name,
    bucket: `${connection.bucket}/${connection.prefix}`,
    server: connection.endpoint ?? "AWS",
  });
}

async function connections(): Promise<Connection[]> {
  return (await api.GET("/connections")).data?.connections ?? [];
}

/** The account page's list of connections, each with its delete button. */
export async function loadConnections(): Promise<void> {
  const saved = await connections();
  byId("connections").replaceChildren(
    ...saved.map((connection) => {
      const remove = el("button", { type: "button" }, t("storage.delete"));
      remove.addEventListener(
        "click",
        detached(async () => {
          const { error } = await api.DELETE("/connections/{connection_id}", {
            params: { path: { connection_id: connection.id } },
          });
          byId("connection-problem").textContent = error?.message ?? "";
          await loadConnections();
        }),
      );
      return el("li", { class: "connection" }, el("span", {}, described(connection)), " ", remove);
    }),
  );
  byId("no-connections").hidden = saved.length > 0;
}

/** The converter's "also save the MP3s to" choice: one option per connection, hidden with
 * none. */
export async function offerExports(): Promise<void> {
  const saved = await connections();
  const select = byId<HTMLSelectElement>("export-to");
  const kept = select.value;
  select.replaceChildren(
    el("option", { value: "" }, t("settings.exportTo.none")),
    ...saved.map((connection) => el("option", { value: connection.id }, described(connection))),
  );
  select.value = saved.some((connection) => connection.id === kept) ? kept : "";
  byId("export-choice").hidden = saved.length === 0;
}

async function saveConnection(form: HTMLFormElement, event: SubmitEvent): Promise<void> {
  event.preventDefault();
  const data = new FormData(form);
  const optional = (name: string) => text(data, name) || undefined;
  const { data: saved, error } = await api.POST("/connections", {
    body: {
      name: text(data, "name"),
      endpoint: optional("endpoint"),
      region: optional("region"),
      bucket: text(data, "bucket"),
      prefix: optional("prefix"),
      access_key_id: text(data, "access_key_id"),
      secret_access_key: text(data, "secret_access_key"),
    },
  });
  byId("connection-problem").textContent = error?.message ?? "";
  if (!saved) return;
  form.reset();
  await loadConnections();
}

export function setUpStorage(): void {
  const form = byId<HTMLFormElement>("connection-form");
  form.addEventListener("submit", detached((event: SubmitEvent) => saveConnection(form, event)));
}
