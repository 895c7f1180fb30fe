// A forgotten password: the sign-in page asks for a mailed link, and the link opens
// `#/reset?token=...`, where a new password is chosen. The token stays in the fragment, which
// no request and no Referer carries.
import { api } from "./session";
import { byId, detached } from "./ui";
import { t } from "./i18n";

/** The token of a reset link the page was opened with, if it was. */
export function resetToken(): string | null {
  const match = /^#\/reset\?token=([A-Za-z0-9_-]+)$/.exec(location.hash);
  return match ? match[1] : null;
}

function text(data: FormData, name: string): string {
  const value = data.get(name);
  return typeof value === "string" ? value : "";
}

async function askForLink(form: HTMLFormElement, event: SubmitEvent): Promise<void> {
  event.preventDefault();
  const { data, error } = await api.POST("/password/forgot", {
    body: { email: text(new FormData(form), "email") },
  });
  byId("forgot-said").textContent = data?.message ?? error?.message ?? "";
}

async function choosePassword(
  form: HTMLFormElement,
  event: SubmitEvent,
  done: () => void,
): Promise<void> {
  event.preventDefault();
  const { error, response } = await api.POST("/password/reset", {
    body: { token: resetToken() ?? "", new_password: text(new FormData(form), "password") },
  });
  if (!response.ok) {
    byId("reset-problem").textContent =
      error?.message ?? t("signIn.serverAnswered", { status: response.status });
    return;
  }
  form.reset();
  // The spent link leaves the address bar and the history.
  history.replaceState(null, "", "/");
  done();
  byId("sign-in-problem").textContent = t("reset.done");
}

/** `done` shows the sign-in form once a new password is chosen. */
export function setUpPasswordReset(done: () => void): void {
  const forgot = byId<HTMLFormElement>("forgot-form");
  forgot.addEventListener("submit", detached((event: SubmitEvent) => askForLink(forgot, event)));
  const reset = byId<HTMLFormElement>("reset-form");
  reset.addEventListener(
    "submit",
    detached((event: SubmitEvent) => choosePassword(reset, event, done)),
  );
}
