// The signed-in user's access token, held in memory only (never in storage or URLs). Its
// refresh token lives in the session cookie, which no script can read and only this site's
// pages send (see `POST /session`): a reload renews the access token from it, and the access
// token is renewed shortly before it runs out.
import createClient, { type Middleware } from "openapi-fetch";
import type { components, paths } from "./api";
import { t } from "./i18n";

type SessionToken = components["schemas"]["SessionToken"];

let tokens: SessionToken | null = null;
let expiresAt = 0;
let renewing: Promise<boolean> | null = null;

/** A typed client for the gateway's API, from the committed OpenAPI document. */
export const api = createClient<paths>({ baseUrl: location.origin });

const OWN_AUTH = ["/session", "/session/refresh"];

/** Sends the access token; a token the server no longer takes (401) is renewed once, and a
 * session that cannot be renewed has ended. */
const bearer: Middleware = {
  async onRequest({ request, schemaPath }) {
    if (OWN_AUTH.includes(schemaPath)) return request;
    const token = await accessToken();
    if (token) request.headers.set("Authorization", `Bearer ${token}`);
    return request;
  },
  async onResponse({ request, response, schemaPath }) {
    if (response.status !== 401 || OWN_AUTH.includes(schemaPath) || !tokens) return response;
    if (!(await renewOnce())) return response;
    // Only requests without a body can be sent again as they were.
    if (request.method !== "GET" && request.method !== "DELETE") return response;
    const again = new Request(request);
    again.headers.set("Authorization", `Bearer ${tokens?.access_token}`);
    return fetch(again);
  },
};
api.use(bearer);

export function signedIn(): boolean {
  return tokens !== null;
}

/** Signs in with HTTP Basic; the sentence to show when refused. */
export async function signIn(email: string, password: string): Promise<string | null> {
  const basic = btoa(String.fromCharCode(...new TextEncoder().encode(`${email}:${password}`)));
  const { data, error, response } = await api.POST("/session", {
    headers: { Authorization: `Basic ${basic}` },
  });
  if (!data) return error?.message ?? t("signIn.serverAnswered", { status: response.status });
  keep(data);
  return null;
}

export async function signOut(): Promise<void> {
  if (tokens) await api.POST("/logout").catch(() => undefined);
  tokens = null;
  forgetUploads();
}

/** Removes what the resumable uploads left in the browser's storage (tus-js-client keeps each
 * unfinished upload's file name, size, choices and address there, under `tus::`). */
export function forgetUploads(): void {
  const kept = Array.from({ length: localStorage.length }, (_, i) => localStorage.key(i));
  for (const key of kept) if (key?.startsWith("tus::")) localStorage.removeItem(key);
}

/** A valid access token, renewed first if it is about to run out; null when signed out. */
export async function accessToken(): Promise<string | null> {
  if (!tokens) return null;
  if (Date.now() > expiresAt - 60_000 && !(await renewOnce())) return null;
  return tokens?.access_token ?? null;
}

/** Renews the tokens, sharing one request among all who ask at once; whether it worked. */
function renewOnce(): Promise<boolean> {
  renewing ??= renew().finally(() => (renewing = null));
  return renewing;
}

async function renew(): Promise<boolean> {
  if (!tokens) return false;
  if (await resumed()) return true;
  tokens = null;
  expired();
  return false;
}

/** Whether the session cookie still holds a login: the access token is renewed from it (as
 * after a reload). */
export async function resumed(): Promise<boolean> {
  const { data } = await api.POST("/session/refresh", {
    params: { header: { "Audiomill-Session": "1" } },
  });
  if (data) keep(data);
  return data !== undefined;
}

function keep(pair: SessionToken): void {
  tokens = pair;
  expiresAt = Date.now() + pair.expires_in * 1000;
}

let onExpired: () => void = () => undefined;

/** What to do when the session ends by itself (the refresh token refused). */
export function whenExpired(callback: () => void): void {
  onExpired = callback;
}

function expired(): void {
  onExpired();
}
