// The settings form: what the next files are converted with, sent as each upload's metadata
// under the form fields' names. Remembered between visits only when the person asks (they
// are preferences, not secrets), and put back to the defaults with one button.
import { trimText } from "./words";

const REMEMBERED = "audiomill.choices";

export function setUpChoices(form: HTMLFormElement): void {
  const remember = form.querySelector<HTMLInputElement>("#remember")!;
  const saved = localStorage.getItem(REMEMBERED);
  if (saved) {
    fill(form, JSON.parse(saved) as Record<string, string>);
    remember.checked = true;
  }
  const changed = () => {
    describeTrim(form);
    if (remember.checked) localStorage.setItem(REMEMBERED, JSON.stringify(chosen(form)));
    else localStorage.removeItem(REMEMBERED);
  };
  form.addEventListener("input", changed);
  form.addEventListener("change", changed);
  form.querySelector("#reset-choices")!.addEventListener("click", () => {
    form.reset();
    changed();
  });
  describeTrim(form);
}

function fill(form: HTMLFormElement, values: Record<string, string>): void {
  for (const [name, value] of Object.entries(values)) {
    const field = form.elements.namedItem(name);
    if (field instanceof HTMLInputElement && field.type === "checkbox") field.checked = true;
    else if (field instanceof HTMLInputElement || field instanceof HTMLSelectElement) {
      field.value = value;
    }
  }
}

function describeTrim(form: HTMLFormElement): void {
  const value = (name: string) => (form.elements.namedItem(name) as HTMLInputElement).value;
  form.querySelector("#trim-help")!.textContent = trimText(value("start"), value("end"));
}

/** The choices made, by field name, as the server takes them (see [`sendable`]). */
export function chosen(form: HTMLFormElement): Record<string, string> {
  const choices: Record<string, string> = {};
  for (const [name, value] of new FormData(form)) {
    if (typeof value === "string" && value.trim() !== "") choices[name] = value.trim();
  }
  return sendable(choices);
}

/** `choices` without the fields that do not apply beside the others: the kbit/s only with a
 * constant or average bitrate, the quality only with a varying one and no purpose (a purpose
 * sets its own). */
export function sendable(choices: Record<string, string>): Record<string, string> {
  const kept = { ...choices };
  const mode = kept.bitrate_mode;
  if (mode === "cbr" || mode === "abr") delete kept.quality;
  else delete kept.bitrate;
  if (kept.preset) delete kept.quality;
  return kept;
}
