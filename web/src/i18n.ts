// Every word the page shows, from one catalogue per language (strings/*.json, the same keys in
// each): the page's own markup names its keys in `data-i18n` attributes, the code calls `t`.
// The language is the one the person picked here, else the browser's first one we have, else
// English. The server's own sentences (a refusal's reason) stay as the server says them.
import de from "./strings/de.json";
import en from "./strings/en.json";

export type Key = keyof typeof en;
export type Language = "en" | "de";

/** The languages offered, by code, each named in itself. */
export const LANGUAGES: Record<Language, string> = { en: "English", de: "Deutsch" };

const CATALOGUES: Record<Language, Record<Key, string>> = { en, de };
const PICKED = "audiomill.language";

let current: Language = pick();

function pick(): Language {
  const picked = typeof localStorage === "undefined" ? null : localStorage.getItem(PICKED);
  if (picked && picked in CATALOGUES) return picked as Language;
  const wanted = typeof navigator === "undefined" ? [] : navigator.languages;
  const found = wanted.map((tag) => tag.slice(0, 2).toLowerCase()).find((code) => code in CATALOGUES);
  return (found as Language | undefined) ?? "en";
}

export function language(): Language {
  return current;
}

/** Shows the page in `code` from now on (and on later visits). */
export function useLanguage(code: Language): void {
  current = code;
  localStorage.setItem(PICKED, code);
}

/** The text of `key` in the current language, its `{name}` parameters filled in. */
export function t(key: Key, params: Record<string, string | number> = {}): string {
  const template = CATALOGUES[current][key] ?? en[key];
  return template.replace(/\{(\w+)\}/g, (whole, name: string) =>
    name in params ? String(params[name]) : whole,
  );
}

/** Sets every text the markup names by key (`data-i18n`, `data-i18n-placeholder`). */
export function translatePage(root: Document): void {
  root.documentElement.lang = current;
  for (const node of root.querySelectorAll<HTMLElement>("[data-i18n]")) {
    node.textContent = t(node.dataset.i18n as Key);
  }
  for (const node of root.querySelectorAll<HTMLInputElement>("[data-i18n-placeholder]")) {
    node.placeholder = t(node.dataset.i18nPlaceholder as Key);
  }
}
