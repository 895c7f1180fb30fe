// The output choices form: sent as the upload's metadata under the form fields' names, and
// remembered between visits (they are preferences, not secrets).
const REMEMBERED = "audiomill.choices";

export function restoreChoices(form: HTMLFormElement): void {
  const saved = JSON.parse(localStorage.getItem(REMEMBERED) ?? "{}") as Record<string, string>;
  for (const [name, value] of Object.entries(saved)) {
    const field = form.elements.namedItem(name);
    if (field instanceof HTMLInputElement || field instanceof HTMLSelectElement) {
      field.value = value;
    }
  }
  form.addEventListener("change", () => {
    localStorage.setItem(REMEMBERED, JSON.stringify(chosen(form)));
  });
}

/** The choices made, by field name; fields left empty are not sent. */
export function chosen(form: HTMLFormElement): Record<string, string> {
  const choices: Record<string, string> = {};
  for (const [name, value] of new FormData(form)) {
    if (typeof value === "string" && value.trim() !== "") choices[name] = value.trim();
  }
  return choices;
}
