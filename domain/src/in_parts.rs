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
    /// part leaves as many reservoir bytes free as the later one reaches back (mostly within a
    /// few frames, but a stretch of 40 without one was seen in an hour of music), and the last
    /// few frames of a part hold the encoder's flush. About 3 s: 1% of a 300 s part. Should
    /// none be found, the source is converted in one pass.
    pub const OVERLAP_FRAMES: u64 = 120;

    /// Shares of about `share_seconds` for `duration_ms` of audio at `rate` Hz in frames of
    /// `frame_samples`, at least two (a source worth planning is worth two parts) and, when
    /// `max_parts` is given, at most that many (longer shares then): fewer, longer parts cost
    /// less start-up each. Each part encodes as many frames, warm-up and overlap included, so
    /// that they finish together: the first share is longer by the warm-up it does not need,
    /// the last by the overlap.
    pub fn new(
        duration_ms: u64,
        share_seconds: u32,
        max_parts: Option<u32>,
        rate: u32,
        frame_samples: u32,
    ) -> Self {
        let frames_per_second = f64::from(rate) / f64::from(frame_samples.max(1));
        let total_frames = (duration_ms as f64 / 1000.0 * frames_per_second).floor() as u64;
        let wanted = (duration_ms as f64 / 1000.0 / f64::from(share_seconds.max(1))).round();
        let wanted = max_parts.map_or(wanted as u64, |most| (wanted as u64).min(u64::from(most)));
        // Each share must hold a part's warm-up and overlap.
        let most = (total_frames / (Self::WARM_UP_FRAMES + Self::OVERLAP_FRAMES)).max(1);
        let count = wanted.clamp(2, most.max(2)).min(most);
        let (warm_up, overlap) = (Self::WARM_UP_FRAMES, Self::OVERLAP_FRAMES);
        // Frame counts: the first part encodes `middle + warm_up` and its overlap, each middle
        // one its warm-up, `middle` and its overlap, the last its warm-up and the rest.
        let middle = total_frames.saturating_sub(warm_up + overlap) / count;
        let shares = if middle >= warm_up + overlap {
            (0..count)
                .map(|i| if i == 0 { 0 } else { i * middle + warm_up })
                .collect()
        } else {
            // Too short to even out: equal shares.
            let share = total_frames / count;
            (0..count).map(|i| i * share).collect()
        };
        Self {
            shares,
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

/// Which part an activity converts, and of how many: its activity id says so
/// (`round-1-part-3-of-6`), so that `/status` counts the parts already done before any running
/// part has reported, and an operator reads it in the Web UI. The round tells apart the parts
/// of a source fetched again after its worker was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartId {
    /// The job's round on a worker, from 1.
    pub round: u32,
    /// From 0.
    pub part: u32,
    pub parts: u32,
}

impl PartId {
    pub fn activity_id(&self) -> String {
        format!(
            "round-{}-part-{}-of-{}",
            self.round,
            self.part + 1,
            self.parts
        )
    }

    /// The part an activity id names; `None` for any other id.
    pub fn from_activity_id(id: &str) -> Option<Self> {
        let rest = id.strip_prefix("round-")?;
        let (round, rest) = rest.split_once("-part-")?;
        let (part, parts) = rest.split_once("-of-")?;
        let (round, part, parts) = (
            round.parse().ok()?,
            part.parse::<u32>().ok()?,
            parts.parse().ok()?,
        );
        (1..=parts).contains(&part).then(|| Self {
            round,
            part: part - 1,
            parts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The frames each part of `plan` encodes, for `total_frames` in all.
    fn encoded(plan: &SegmentPlan, total_frames: u64) -> Vec<u64> {
        (0..plan.parts())
            .map(|part| {
                let span = plan.span(part);
                span.end_frame.unwrap_or(total_frames) - span.first_frame
            })
            .collect()
    }

    #[test]
    fn shares_are_whole_frames_each_part_encodes_as_many_and_at_least_two() {
        // 10 minutes at 44.1 kHz (22 968 frames) in shares of about 60 s: 10 parts, each
        // encoding 2412 frames.
        let plan = SegmentPlan::new(600_000, 60, None, 44_100, 1152);
        assert_eq!(plan.parts(), 10);
        assert_eq!(plan.shares[1], 2284 + SegmentPlan::WARM_UP_FRAMES);
        assert_eq!(plan.shares[9], 9 * 2284 + SegmentPlan::WARM_UP_FRAMES);
        let work = encoded(&plan, 22_968);
        assert_eq!(work, [2412; 10]);
        // About 300 s: two parts of 10 minutes, twelve of an hour.
        assert_eq!(
            SegmentPlan::new(600_000, 300, None, 44_100, 1152).parts(),
            2
        );
        assert_eq!(
            SegmentPlan::new(3_600_000, 300, None, 44_100, 1152).parts(),
            12
        );
        // Shorter than a share: still two; too short for two parts' warm-up and overlap: one.
        assert_eq!(SegmentPlan::new(80_000, 300, None, 44_100, 1152).parts(), 2);
        assert_eq!(SegmentPlan::new(1_000, 300, None, 44_100, 1152).parts(), 1);
        assert_eq!(SegmentPlan::new(0, 60, None, 44_100, 1152).parts(), 1);
    }

    #[test]
    fn a_cap_on_parts_makes_the_shares_longer_and_the_work_still_even() {
        // An hour (150 000 frames) in parts of 300 s is 12; at most 2 makes two halves of the
        // work, at most 5 five fifths.
        let halves = SegmentPlan::new(3_600_000, 300, Some(2), 48_000, 1152);
        assert_eq!(halves.shares, [0, 74_936 + 8]);
        assert_eq!(encoded(&halves, 150_000), [75_064, 75_064]);
        let fifths = SegmentPlan::new(3_600_000, 300, Some(5), 48_000, 1152);
        assert_eq!(fifths.shares, [0, 29_982, 59_956, 89_930, 119_904]);
        // The frames that do not divide evenly go to the last.
        assert_eq!(
            encoded(&fifths, 150_000),
            [30_102, 30_102, 30_102, 30_102, 30_104]
        );
        // Fewer than the cap stay as they are; a cap below two still gives two.
        assert_eq!(
            SegmentPlan::new(600_000, 300, Some(8), 48_000, 1152).parts(),
            2
        );
        assert_eq!(
            SegmentPlan::new(3_600_000, 300, Some(1), 48_000, 1152).parts(),
            2
        );
    }

    #[test]
    fn sources_too_short_to_even_out_get_equal_shares() {
        // 300 frames in two parts: too few to give the first the warm-up's worth more.
        let plan = SegmentPlan::new(7_200, 300, None, 48_000, 1152);
        assert_eq!(plan.shares, [0, 150]);
    }

    #[test]
    fn parts_start_before_their_share_and_run_past_the_next() {
        let plan = SegmentPlan::new(180_000, 60, None, 48_000, 1152);
        let second = plan.shares[1];
        assert_eq!(
            plan.span(0),
            PartSpan {
                first_frame: 0,
                end_frame: Some(second + SegmentPlan::OVERLAP_FRAMES),
            }
        );
        assert_eq!(
            plan.span(1).first_frame,
            second - SegmentPlan::WARM_UP_FRAMES
        );
        assert_eq!(plan.span(2).end_frame, None);
    }

    #[test]
    fn a_part_is_named_by_its_activity_id() {
        let id = PartId {
            round: 2,
            part: 0,
            parts: 6,
        };
        assert_eq!(id.activity_id(), "round-2-part-1-of-6");
        assert_eq!(PartId::from_activity_id(&id.activity_id()), Some(id));
        for other in [
            "7",
            "",
            "round-1-part-0-of-6",
            "round-1-part-7-of-6",
            "round-x-part-1-of-2",
        ] {
            assert_eq!(PartId::from_activity_id(other), None, "{other}");
        }
    }
}
