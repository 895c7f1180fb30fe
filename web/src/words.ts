// What the page says of a job and of a wait, in words for people rather than the server's
// step names and advice. Pure functions, unit-tested under test/.
import type { JobEvent } from "./events";
import { seconds } from "./ui";

/** Where a running job stands, in words for people rather than the steps' names. */
export function progressText(event: JobEvent): string {
  if (event.status === "queued") return "Waiting for a converter";
  switch (event.step) {
    case "validate_token":
    case "fetch_source":
      return "Getting the video ready";
    case "transcode": {
      const left = event.eta_seconds != null ? `, about ${seconds(event.eta_seconds)} left` : "";
      return `Converting ${event.progress} %${left}`;
    }
    case "store_mp3":
      return "Saving the MP3";
    case "send_email":
      return "Sending the e-mail";
    default:
      return "Working on it";
  }
}

/** A refusal the page waits out, in words: the server's reason without its advice to try
 * again, since the page does that itself. */
export function waitingText(sentence: string): string {
  const reason = sentence.replace(/[;,.]?\s*please try again shortly\.?$/i, "").replace(/\.$/, "");
  return `${reason}; trying again by itself`;
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
  if (from === null) return "Start: write seconds (90) or minutes and seconds (1:30).";
  if (end.trim() && to === null) return "End: write seconds (90) or minutes and seconds (1:30).";
  if (to === null) return from === 0 ? "The whole video." : `From ${clock(from)} to the end.`;
  if (to <= from) return "The end must come after the start.";
  return `${clock(to - from)} of each video, from ${clock(from)} to ${clock(to)}.`;
}

/** The quality a choice of `quality` names, as the settings form names it. */
const QUALITIES: Record<string, string> = {
  "9": "smallest", "7": "small", "4": "good", "0": "best",
};

/** The settings a group of files is converted with, in one line. */
export function settingsText(choices: Record<string, string>): string {
  const parts = [choices.preset
    ? `made for ${choices.preset}`
    : `${QUALITIES[choices.quality ?? ""] ?? "high"} quality`];
  if (choices.channels) parts.push(choices.channels === "1" ? "mono" : "stereo");
  if (choices.start || choices.end) parts.push(trimText(choices.start ?? "", choices.end ?? "").replace(/\.$/, "").toLowerCase());
  if (choices.normalize) parts.push("loudness evened out");
  return `Converted with: ${parts.join(", ")}.`;
}
