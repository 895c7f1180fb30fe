// Making an account: through an invitation's mailed link (`#/join?token=...`, the address is
// the invitation's), or, when the service allows sign-up, from the sign-in page with any
// address.
import { api } from "./session";
import { byId, detached } from "./ui";
import { t } from "./i18n";

/** The token of an invitation link the page was opened with, if it was. */
function invitation(): string | null {
  const match = /^#\/join\?token=([A-Za-z0-9_-]+)$/.exec(location.hash);
  return match ? match[1] : null;
}

/** Whether the page is the one for making an account. */
export function joining(): boolean {
  return location.hash === "#/join" || invitation() !== null;
}

/** The form as the way in asks: an address only without an invitation. */
export function prepareJoin(): void {
  const invited = invitation() !== null;
  byId("join-email-label").hidden = invited;
  byId<HTMLFormElement>("join-form").querySelector("input[name=email]")?.toggleAttribute(
    "required",
    !invited,
  );
}

function text(data: FormData, name: string): string {
  const value = data.get(name);
  return typeof value === "string" ? value : "";
}

async function join(form: HTMLFormElement, event: SubmitEvent, done: () => void): Promise<void> {
  event.preventDefault();
  const data = new FormData(form);
  const token = invitation();
  const { error, response } = await api.POST("/signup", {
    body: token
      ? { token, password: text(data, "password") }
      : { email: text(data, "email"), password: text(data, "password") },
  });
  if (!response.ok) {
    byId("join-problem").textContent =
      error?.message ?? t("signIn.serverAnswered", { status: response.status });
    return;
  }
  form.reset();
  // A spent invitation leaves the address bar and the history.
  history.replaceState(null, "", "/");
  done();
  byId("sign-in-problem").textContent = t("join.done");
}

/** `done` shows the sign-in form once the account is made. */
export function setUpJoin(done: () => void): void {
  const form = byId<HTMLFormElement>("join-form");
  form.addEventListener("submit", detached((event: SubmitEvent) => join(form, event, done)));
}
