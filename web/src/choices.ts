// The settings form: what the next files are converted with, sent as each upload's metadata
// under the form fields' names. Remembered between visits only when the person asks (they
// are preferences, not secrets), and put back to the defaults with one button.
import { t } from "./i18n";
import { formatOf, trimText } from "./words";

export { formatOf };

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
    fitBitrates(form);
    fitFormat(form);
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
  fitBitrates(form);
  fitFormat(form);
}

/** Turns off the fields the chosen format has no use for (a field turned off is not sent),
 * and says why under the format. */
function fitFormat(form: HTMLFormElement): void {
  const value = (name: string) => (form.elements.namedItem(name) as HTMLSelectElement).value;
  const format = formatOf({ format: value("format"), preset: value("preset") });
  const lossless = format === "flac" || format === "wav";
  const off = (name: string, disabled: boolean) => {
    (form.elements.namedItem(name) as HTMLSelectElement).disabled = disabled;
  };
  off("quality", format !== "mp3");
  off("bitrate_mode", format !== "mp3" && format !== "opus");
  off("bitrate", lossless);
  const frame = form.querySelector<HTMLOptionElement>('select[name=cover] option[value=frame]')!;
  frame.disabled = format === "wav";
  if (frame.disabled && value("cover") === "frame") (form.elements.namedItem("cover") as HTMLSelectElement).value = "";
  const help = lossless
    ? t("settings.format.lossless")
    : format !== "mp3"
      ? t("settings.format.noQuality")
      : "";
  form.querySelector("#format-help")!.textContent =
    format === "wav" ? `${help} ${t("settings.format.noPicture")}` : help;
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

/** The constant or average bitrates (kbit/s) an MP3 can have at `sampleRate` (Hz; empty: the
 * video's, which the encoder brings to 32 kHz or more): below 32 kHz (MPEG-2) up to 160. */
export function bitratesFor(sampleRate: string): number[] {
  const all = [32, 48, 64, 96, 128, 160, 192, 256, 320];
  return sampleRate !== "" && Number(sampleRate) < 32000 ? all.filter((kbps) => kbps <= 160) : all;
}

/** Offers only the bitrates the chosen sample rate allows, moving a choice it does not to the
 * nearest one it does. */
function fitBitrates(form: HTMLFormElement): void {
  const rate = (form.elements.namedItem("sample_rate") as HTMLSelectElement).value;
  const bitrate = form.elements.namedItem("bitrate") as HTMLSelectElement;
  const allowed = bitratesFor(rate);
  for (const option of Array.from(bitrate.options)) {
    option.disabled = !allowed.includes(Number(option.value));
  }
  if (!allowed.includes(Number(bitrate.value))) bitrate.value = String(allowed[allowed.length - 1]);
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
 * sets its own), and only what the format takes (the quality MP3's alone). */
export function sendable(choices: Record<string, string>): Record<string, string> {
  const kept = { ...choices };
  const mode = kept.bitrate_mode;
  if (mode === "cbr" || mode === "abr") delete kept.quality;
  else delete kept.bitrate;
  if (kept.preset) delete kept.quality;
  const format = formatOf(kept);
  if (format !== "mp3") delete kept.quality;
  if (format !== "mp3" && format !== "opus") delete kept.bitrate_mode;
  if (format === "flac" || format === "wav") delete kept.bitrate;
  return kept;
}
