// What the page says of a job, a wait, a trim and the settings, in words for people rather
// than the server's step names and advice, from the catalogue (see `i18n`). Pure functions,
// unit-tested under test/.
import type { JobEvent } from "./events";
import { type Key, t } from "./i18n";
import { seconds } from "./ui";

/** Where a running job stands, in words for people rather than the steps' names. */
export function progressText(event: JobEvent): string {
  if (event.status === "queued") return t("step.waiting");
  switch (event.step) {
    case "import_source":
      return t("step.importing");
    case "validate_token":
    case "fetch_source":
      return t("step.preparing");
    case "transcode":
      return event.eta_seconds != null
        ? t("step.convertingLeft", { percent: event.progress, left: seconds(event.eta_seconds) })
        : t("step.converting", { percent: event.progress });
    case "store_mp3":
      return t("step.saving");
    case "send_email":
      return t("step.mailing");
    default:
      return t("step.working");
  }
}

/** A refusal the page waits out, in words: the reason without the server's advice to try
 * again, since the page does that itself. */
export function waitingText(sentence: string): string {
  const reason = sentence.replace(/[;,.]?\s*please try again shortly\.?$/i, "").replace(/\.$/, "");
  return t("row.waitingFor", { reason });
}

/** Why a job failed, in the catalogue's words with what to do, for the failures a person can
 * act on; else the server's own sentence. */
export function failureText(failureType: string | null | undefined, sentence: string): string {
  const key = `failure.${failureType ?? ""}` as Key;
  const known = t(key);
  return known === key ? sentence : known;
}

/** A time as a person writes it, in seconds: `90`, `90.5`, `1:30` or `1:02:03`; null when it
 * is none of these. */
export function secondsOf(text: string): number | null {
  const trimmed = text.trim();
  if (!/^\d+(:\d{2}){0,2}(\.\d{1,3})?$/.test(trimmed)) return null;
  return trimmed.split(":").reduce((total, part) => total * 60 + Number(part), 0);
}

/** A length in seconds as people read it: `45 s`, `1:30`, `1:02:03`. */
export function clock(total: number): string {
  const whole = Math.round(total);
  if (whole < 60) return `${whole} s`;
  const [h, m, s] = [Math.floor(whole / 3600), Math.floor(whole / 60) % 60, whole % 60];
  const two = (n: number) => String(n).padStart(2, "0");
  return h > 0 ? `${h}:${two(m)}:${two(s)}` : `${m}:${two(s)}`;
}

/** What a trim keeps of each video, from the start and end fields as typed. */
export function trimText(start: string, end: string): string {
  const from = start.trim() ? secondsOf(start) : 0;
  const to = end.trim() ? secondsOf(end) : null;
  if (from === null) return t("trim.badStart");
  if (end.trim() && to === null) return t("trim.badEnd");
  if (to === null) return from === 0 ? t("trim.whole") : t("trim.toEnd", { from: clock(from) });
  if (to <= from) return t("trim.backwards");
  return t("trim.keeps", { length: clock(to - from), from: clock(from), to: clock(to) });
}

/** The catalogue's word for a choice of `quality`. */
const QUALITIES: Record<string, Key> = {
  "9": "summary.quality.smallest",
  "7": "summary.quality.small",
  "4": "summary.quality.good",
  "0": "summary.quality.best",
};

const FORMAT_LABELS: Record<string, string> = {
  mp3: "MP3", m4a: "M4A", opus: "Opus", flac: "FLAC", wav: "WAV",
};

/** The format the choices make: the one chosen, else the purpose's, else MP3. */
export function formatOf(choices: Record<string, string>): string {
  const byPreset: Record<string, string> = { speech: "opus", apple: "m4a", archive: "flac" };
  return choices.format || byPreset[choices.preset ?? ""] || "mp3";
}

/** The settings a group of files is converted with, in one line. */
export function settingsText(choices: Record<string, string>): string {
  const mode = choices.bitrate_mode;
  const format = formatOf(choices);
  const label = FORMAT_LABELS[format] ?? format;
  const parts = [
    choices.preset
      ? t("summary.preset", { preset: choices.preset })
      : format !== "mp3"
        ? choices.bitrate ? `${label} ${choices.bitrate} kbit/s` : label
        : mode === "cbr" || mode === "abr"
          ? t(mode === "cbr" ? "summary.cbr" : "summary.abr", { kbps: choices.bitrate ?? "" })
          : t("summary.quality", { quality: t(QUALITIES[choices.quality ?? ""] ?? "summary.quality.high") }),
  ];
  if (choices.preset && format !== "mp3") parts.push(label);
  if (choices.channels) parts.push(t(choices.channels === "1" ? "summary.mono" : "summary.stereo"));
  const from = secondsOf(choices.start ?? "") ?? 0;
  const to = secondsOf(choices.end ?? "");
  if (to !== null) parts.push(t("summary.trim", { from: clock(from), to: clock(to) }));
  else if (from > 0) parts.push(t("summary.trimToEnd", { from: clock(from) }));
  if (choices.normalize) parts.push(t("summary.normalized"));
  return t("summary.line", { settings: parts.join(", ") });
}
