// The ways to sign in that the service offers (`/sign-in/methods`): e-mail and password,
// single sign-on with an OpenID provider, making an account; and why a single sign-on did not
// go through, as the server sends the browser back with `?sign_in_error=<reason>`.
import { api } from "./session";
import { byId } from "./ui";
import { type Key, t } from "./i18n";

const REASONS = ["unavailable", "state", "refused", "token", "email", "exists", "disabled"];

/** The sign-in page offers what the service does, and only that. */
export async function offerSignIn(): Promise<void> {
  const { data } = await api.GET("/sign-in/methods");
  if (!data) return;
  byId("signup-open").hidden = !data.signup;
  byId("password-sign-in").hidden = !data.password;
  const provider = data.single_sign_on;
  byId("sign-on").hidden = !provider;
  byId("sign-on-or").hidden = !data.password;
  if (provider) {
    const link = byId<HTMLAnchorElement>("sign-on-link");
    link.href = provider.url;
    link.textContent = t("signOn.with", { name: provider.name });
  }
}

/** Says why a single sign-on failed, once: the reason leaves the address. */
export function showSignOnProblem(): void {
  const query = new URLSearchParams(location.search);
  const reason = query.get("sign_in_error");
  if (reason === null) return;
  const known = REASONS.includes(reason) ? reason : "refused";
  byId("sign-on-problem").textContent = t(`signOn.error.${known}` as Key);
  query.delete("sign_in_error");
  const rest = query.toString();
  history.replaceState(null, "", `${location.pathname}${rest ? `?${rest}` : ""}${location.hash}`);
}
