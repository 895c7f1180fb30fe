// The admin page: the accounts found by part of their address, each with its usage and own
// limits, turned off or on, made an admin or not, handed to single sign-on; a new account added, or someone invited.
import type { components } from "./api";
import { api } from "./session";
import { byId, bytes, detached, el } from "./ui";
import { t } from "./i18n";

type Account = components["schemas"]["ManagedAccount"];

let after: string | null = null;
/** Whether the service has single sign-on, so accounts may be handed to it. */
let signOn = false;

function text(data: FormData, name: string): string {
  const value = data.get(name);
  return typeof value === "string" ? value : "";
}

/** Says how a change went: its sentence, or the server's refusal. */
function say(done: string, refusal: string | undefined): void {
  byId("admin-said").textContent = refusal ? "" : done;
  byId("admin-problem").textContent = refusal ?? "";
}

/** A limit as typed: empty is the default (null), else a whole number. */
function limitOf(input: HTMLInputElement): number | null {
  return input.value.trim() === "" ? null : Math.max(0, Math.floor(Number(input.value)));
}

async function change(
  account: Account,
  body: components["schemas"]["UserChanges"],
): Promise<void> {
  const { error } = await api.PATCH("/users/{user_id}", {
    params: { path: { user_id: account.id } },
    body,
  });
  say(t("admin.saved", { email: account.email }), error?.message);
  await loadAdmin(true);
}

function button(label: string, onClick: () => Promise<void>): HTMLButtonElement {
  const node = el("button", { type: "button" }, label);
  node.addEventListener("click", detached(onClick));
  return node;
}

function limitsCell(account: Account): HTMLTableCellElement {
  const number = (value: number | null | undefined, label: string) =>
    el("input", {
      type: "number", min: "0", step: "1", value: value == null ? "" : String(value),
      "aria-label": label, class: "limit",
    });
  const storage = number(account.limits.storage_limit_mb, t("admin.storageLimit", { email: account.email }));
  const jobs = number(account.limits.jobs_per_day_limit, t("admin.jobsLimit", { email: account.email }));
  const save = button(t("admin.saveLimits"), () =>
    change(account, {
      limits: { storage_limit_mb: limitOf(storage), jobs_per_day_limit: limitOf(jobs) },
    }),
  );
  return el("td", {}, storage, " ", jobs, " ", save);
}

function row(account: Account): HTMLTableRowElement {
  const state = [account.active ? t("admin.active") : t("admin.off")];
  if (account.admin) state.push(t("admin.isAdmin"));
  if (account.single_sign_on) state.push(t("admin.signOn"));
  else if (account.sign_on_link) state.push(t("admin.signOnLinkAllowed"));
  const actions = el(
    "td",
    {},
    button(account.active ? t("admin.turnOff") : t("admin.turnOn"), () =>
      change(account, { active: !account.active }),
    ),
    " ",
    button(account.admin ? t("admin.revokeAdmin") : t("admin.grantAdmin"), () =>
      change(account, { admin: !account.admin }),
    ),
  );
  if (signOn && !account.single_sign_on) {
    actions.append(
      " ",
      button(account.sign_on_link ? t("admin.stopSignOnLink") : t("admin.allowSignOnLink"), () =>
        change(account, { sign_on_link: !account.sign_on_link }),
      ),
    );
  }
  return el(
    "tr",
    { "data-email": account.email },
    el("td", {}, account.email),
    el("td", {}, state.join(", ")),
    el("td", {}, t("admin.used", {
      storage: bytes(account.usage.storage_used_bytes), jobs: account.usage.jobs_today,
    })),
    limitsCell(account),
    actions,
  );
}

/** The accounts the search finds: from the start, or the page after the last one shown. */
export async function loadAdmin(fresh: boolean): Promise<void> {
  if (fresh) after = null;
  signOn = Boolean((await api.GET("/sign-in/methods")).data?.single_sign_on);
  const search = byId<HTMLInputElement>("admin-search").value.trim();
  const { data, error } = await api.GET("/users", {
    params: { query: { search: search || undefined, after: after ?? undefined } },
  });
  if (!data) {
    byId("admin-problem").textContent = error?.message ?? "";
    return;
  }
  const rows = data.users.map(row);
  if (fresh) byId("admin-rows").replaceChildren(...rows);
  else byId("admin-rows").append(...rows);
  after = data.next_after ?? null;
  byId("admin-more").hidden = after === null;
}

async function addAccount(form: HTMLFormElement, event: SubmitEvent): Promise<void> {
  event.preventDefault();
  const data = new FormData(form);
  const email = text(data, "email");
  const { error } = await api.POST("/users", {
    body: { email, password: text(data, "password"), admin: data.get("admin") === "on" },
  });
  say(t("admin.added", { email }), error?.message);
  if (!error) {
    form.reset();
    await loadAdmin(true);
  }
}

async function invite(form: HTMLFormElement, event: SubmitEvent): Promise<void> {
  event.preventDefault();
  const data = new FormData(form);
  const { data: sent, error } = await api.POST("/invitations", {
    body: { email: text(data, "email"), admin: data.get("admin") === "on" },
  });
  say(sent?.message ?? "", error?.message);
  if (sent) form.reset();
}

export function setUpAdmin(): void {
  const invitation = byId<HTMLFormElement>("admin-invite");
  invitation.addEventListener("submit", detached((event: SubmitEvent) => invite(invitation, event)));
  let typing: ReturnType<typeof setTimeout> | undefined;
  byId("admin-search").addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => void loadAdmin(true), 250);
  });
  byId("admin-more").addEventListener("click", () => void loadAdmin(false));
  const form = byId<HTMLFormElement>("admin-add");
  form.addEventListener("submit", detached((event: SubmitEvent) => addAccount(form, event)));
}
