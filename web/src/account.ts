// The account page: usage and quotas, API keys (made, shown once, revoked), the password, signing
// out everywhere, and the webhooks the API registered.
import type { components } from "./api";
import { api, forgetUploads } from "./session";
import { byId, bytes, detached, el } from "./ui";
import { type Key, language, t } from "./i18n";

type ApiKey = components["schemas"]["KeyInfo"];
type Scope = components["schemas"]["Scope"];

const SCOPE_WORDS: Partial<Record<Scope, Key>> = {
  "jobs:read": "scope.jobsRead",
  "jobs:write": "scope.jobsWrite",
  "webhooks:read": "scope.webhooksRead",
  "webhooks:write": "scope.webhooksWrite",
  "account:read": "scope.accountRead",
  "account:write": "scope.accountWrite",
  admin: "scope.admin",
};

const DAY_MS = 86_400_000;

/** A text field of a form's data ("" when missing). */
function text(data: FormData, name: string): string {
  const value = data.get(name);
  return typeof value === "string" ? value : "";
}

export async function loadAccount(): Promise<void> {
  const { data } = await api.GET("/me");
  if (data) {
    const quota = data.quota;
    const limit = (value: number | null | undefined, show: (n: number) => string) =>
      value == null ? t("account.noLimit") : show(value);
    byId("account-facts").replaceChildren(
      el("dt", {}, t("account.email")), el("dd", {}, data.email),
      el("dt", {}, t("account.storage")),
      el("dd", {}, t("account.of", {
        used: bytes(quota.storage_used_bytes), limit: limit(quota.storage_limit_bytes, bytes),
      })),
      el("dt", {}, t("account.jobsToday")),
      el("dd", {}, t("account.of", {
        used: quota.jobs_today, limit: limit(quota.jobs_per_day_limit, String),
      })),
    );
    byId("admin-scope").hidden = !data.admin;
  }
  await Promise.all([loadKeys(), loadWebhooks()]);
}

async function loadWebhooks(): Promise<void> {
  const hooks = (await api.GET("/webhooks")).data?.webhooks ?? [];
  byId("webhooks").replaceChildren(
    ...hooks.map((hook) =>
      el("li", {}, hook.enabled
        ? `${hook.url} (${hook.events.join(", ")})`
        : t("account.webhookOff", { webhook: `${hook.url} (${hook.events.join(", ")})` })),
    ),
  );
  byId("no-webhooks").hidden = hooks.length > 0;
}

function when(time: string): string {
  return new Date(time).toLocaleString(language(), { dateStyle: "medium", timeStyle: "short" });
}

/** One key as a line of the list: its name, how it begins, what it may do, when it was used. */
function keyLine(key: ApiKey): HTMLLIElement {
  const scopes = key.scopes.map((scope) => {
    const words = SCOPE_WORDS[scope];
    return words ? t(words) : scope;
  });
  const facts = [
    key.last_used_at ? t("keys.lastUsed", { when: when(key.last_used_at) }) : t("keys.neverUsed"),
  ];
  if (key.expired) facts.push(t("keys.expired"));
  else if (key.expires_at) facts.push(t("keys.expiresOn", { when: when(key.expires_at) }));
  const revoke = el("button", { type: "button" }, t("keys.revoke"));
  revoke.addEventListener(
    "click",
    detached(async () => {
      const { error } = await api.DELETE("/api-keys/{key_id}", {
        params: { path: { key_id: key.id } },
      });
      byId("key-problem").textContent = error?.message ?? "";
      await loadKeys();
    }),
  );
  return el(
    "li",
    { class: "key", "data-key": key.id },
    el("span", { class: "key-name" }, t("keys.line", {
      name: key.name, prefix: key.prefix, scopes: scopes.join(", "),
    })),
    " ",
    el("span", { class: "help" }, facts.join(", ")),
    " ",
    revoke,
  );
}

async function loadKeys(): Promise<void> {
  const keys = (await api.GET("/api-keys")).data?.keys ?? [];
  byId("keys").replaceChildren(...keys.map(keyLine));
  byId("no-keys").hidden = keys.length > 0;
}

/** Makes the key the form describes and shows it, this once. */
async function createKey(form: HTMLFormElement, event: SubmitEvent): Promise<void> {
  event.preventDefault();
  const data = new FormData(form);
  const scopes = data.getAll("scope").filter((s): s is Scope => typeof s === "string");
  const problem = byId("key-problem");
  if (scopes.length === 0) {
    problem.textContent = t("keys.noScope");
    return;
  }
  const days = Number(text(data, "expires") || 0);
  const { data: made, error } = await api.POST("/api-keys", {
    body: {
      name: text(data, "name"),
      scopes,
      expires_at: days ? new Date(Date.now() + days * DAY_MS).toISOString() : null,
    },
  });
  problem.textContent = error?.message ?? "";
  if (!made) return;
  form.reset();
  byId("new-key-value").textContent = made.key;
  byId("copy-key").textContent = t("keys.copy");
  byId("new-key").hidden = false;
  await loadKeys();
}

async function changePassword(form: HTMLFormElement, event: SubmitEvent): Promise<void> {
  event.preventDefault();
  const data = new FormData(form);
  const { error, response } = await api.PUT("/me/password", {
    body: {
      current_password: text(data, "current"),
      new_password: text(data, "new"),
    },
  });
  const problem = byId("password-problem");
  if (response.ok) {
    form.reset();
    problem.textContent = t("password.changed");
  } else {
    problem.textContent = error?.message ?? t("signIn.serverAnswered", { status: response.status });
  }
}

export function setUpAccount(): void {
  const keyForm = byId<HTMLFormElement>("key-form");
  keyForm.addEventListener("submit", detached((event: SubmitEvent) => createKey(keyForm, event)));
  byId("copy-key").addEventListener(
    "click",
    detached(async () => {
      await navigator.clipboard.writeText(byId("new-key-value").textContent ?? "");
      byId("copy-key").textContent = t("keys.copied");
    }),
  );
  const passwordForm = byId<HTMLFormElement>("password-form");
  passwordForm.addEventListener(
    "submit",
    detached((event: SubmitEvent) => changePassword(passwordForm, event)),
  );
  byId("sign-out-everywhere").addEventListener(
    "click",
    detached(async () => {
      await api.DELETE("/me/logins");
      forgetUploads();
      location.replace("/");
    }),
  );
}
