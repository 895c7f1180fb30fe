// Small DOM helpers: everything the server sends is set as text, never as HTML.
import { language } from "./i18n";

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Record<string, string> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  for (const child of children) node.append(child);
  return node;
}

export function byId<T extends HTMLElement>(id: string): T {
  const node = document.getElementById(id);
  if (!node) throw new Error(`#${id} is missing`);
  return node as T;
}

export function bytes(count: number): string {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = count;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  const digits = unit === 0 ? 0 : 1;
  const number = value.toLocaleString(language(), {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
  return `${number} ${units[unit]}`;
}

export function seconds(total: number): string {
  const minutes = Math.floor(total / 60);
  return minutes > 0 ? `${minutes} min ${Math.round(total % 60)} s` : `${Math.round(total)} s`;
}

/** Saves `blob` as a file named `name`, through a temporary object URL. */
export function saveBlob(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  saveUrl(url, name);
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** Saves what `url` answers as a file named `name`. */
export function saveUrl(url: string, name: string): void {
  const link = el("a", { href: url, download: name });
  document.body.append(link);
  link.click();
  link.remove();
}

/** An async event handler as a listener: nothing waits for its promise, and it says so. */
export function detached<E>(handler: (event: E) => Promise<void>): (event: E) => void {
  return (event) => void handler(event);
}

/** The file name a `Content-Disposition` header gives: its exact `filename*` (RFC 6266) before
 * its ASCII `filename`; null without either. */
export function attachmentName(header: string | null): string | null {
  if (!header) return null;
  const exact = /filename\*=UTF-8''([^;]+)/i.exec(header);
  if (exact) {
    try {
      return decodeURIComponent(exact[1].trim());
    } catch {
      // A malformed encoding: the plain name below.
    }
  }
  return /filename="([^"]*)"/i.exec(header)?.[1] ?? null;
}
