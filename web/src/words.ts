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
