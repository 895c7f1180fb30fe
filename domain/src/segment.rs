//! How a long source is converted in parts: the MP3's timeline cut into shares of whole MP3
//! frames, each part encoded apart (by any worker with room) and the parts joined into one
//! file that decodes like a single encode.
//!
//! Part `i` encodes from [`SegmentPlan::WARM_UP_FRAMES`] frames before its share (so LAME's
//! state has settled when the share begins; those frames are dropped at the join) to
//! [`SegmentPlan::OVERLAP_FRAMES`] frames past the next share (where the join picks a frame
//! both parts agree on); the last part runs to the end of the audio.

use serde::{Deserialize, Serialize};

/// A long source's parts, as the worker that probed it planned them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentPlan {
    /// The whole MP3's frame at which each part's share begins; the first is 0.
    pub shares: Vec<u64>,
    /// The audio the plan was made for (the trimmed length, as declared), in ms.
    pub duration_ms: u64,
}

/// The frames one part encodes, in the whole MP3's frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartSpan {
    /// The first frame it encodes (before its share, by the warm-up).
    pub first_frame: u64,
    /// Where it stops (past the next share, by the overlap); `None`: at the end of the audio.
    pub end_frame: Option<u64>,
}

impl SegmentPlan {
    /// Frames encoded before a share and dropped at the join: LAME's psychoacoustic model
    /// and bit reservoir need a few frames of the music before they encode it as they would
    /// in one pass.
    pub const WARM_UP_FRAMES: u64 = 8;

    /// Frames encoded past the next share: the join needs a frame in there where the earlier
    /// part leaves as many reservoir bytes free as the later one reaches back (every few
    /// frames, measured), and the last few frames of a part hold the encoder's flush.
    pub const OVERLAP_FRAMES: u64 = 40;

    /// Shares of `share_seconds` each for `duration_ms` of audio at `rate` Hz in frames of
    /// `frame_samples`; a short remainder is added to the last share. One share: no need
    /// for parts.
    pub fn new(duration_ms: u64, share_seconds: u32, rate: u32, frame_samples: u32) -> Self {
        let frames_per_second = f64::from(rate) / f64::from(frame_samples.max(1));
        let share_frames = (f64::from(share_seconds.max(1)) * frames_per_second).round() as u64;
        let total_frames = (duration_ms as f64 / 1000.0 * frames_per_second).floor() as u64;
        // A part shorter than half a share is not worth its own start-up.
        let count = ((total_frames as f64 / share_frames.max(1) as f64).round() as u64).max(1);
        Self {
            shares: (0..count).map(|i| i * share_frames).collect(),
            duration_ms,
        }
    }

    pub fn parts(&self) -> usize {
        self.shares.len()
    }

    /// The frames part `part` encodes.
    pub fn span(&self, part: usize) -> PartSpan {
        PartSpan {
            first_frame: self.shares[part].saturating_sub(Self::WARM_UP_FRAMES),
            end_frame: self
                .shares
                .get(part + 1)
                .map(|next| next + Self::OVERLAP_FRAMES),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_the_audio_in_whole_frames_with_no_short_tail() {
        // 10 minutes at 44.1 kHz in 60 s shares: 10 parts of 2297 frames (the last longer).
        let plan = SegmentPlan::new(600_000, 60, 44_100, 1152);
        assert_eq!(plan.parts(), 10);
        assert_eq!(plan.shares[1], 2297);
        // 100 s in 60 s shares: two parts; 80 s: one (the 20 s rest joins the first).
        assert_eq!(SegmentPlan::new(100_000, 60, 44_100, 1152).parts(), 2);
        assert_eq!(SegmentPlan::new(80_000, 60, 44_100, 1152).parts(), 1);
        assert_eq!(SegmentPlan::new(0, 60, 44_100, 1152).parts(), 1);
    }

    #[test]
    fn parts_start_before_their_share_and_run_past_the_next() {
        let plan = SegmentPlan::new(180_000, 60, 48_000, 1152);
        assert_eq!(
            plan.span(0),
            PartSpan {
                first_frame: 0,
                end_frame: Some(2500 + SegmentPlan::OVERLAP_FRAMES)
            }
        );
        assert_eq!(plan.span(1).first_frame, 2500 - SegmentPlan::WARM_UP_FRAMES);
        assert_eq!(plan.span(2).end_frame, None);
    }
}
