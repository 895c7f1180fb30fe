//! A job's life cycle as users see it through `GET /status/{job_id}`.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a job stands. Derived from the workflow's execution status; `queued` means the
/// workflow exists but no activity has started yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// The status named `text` (as [`Self::as_str`] writes it).
    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Queued,
            Self::Running,
            Self::Completed,
            Self::Failed,
            Self::Cancelled,
        ]
        .into_iter()
        .find(|status| status.as_str() == text)
    }

    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The workflow's steps, one per activity, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    ValidateToken,
    /// A job from a link: its video fetched from there into storage.
    ImportSource,
    FetchSource,
    Transcode,
    /// A job whose MP3 also goes to the user's storage: it is being written there.
    ExportMp3,
    StoreMp3,
    SendEmail,
}

impl Step {
    pub const ALL: [Step; 7] = [
        Step::ValidateToken,
        Step::ImportSource,
        Step::FetchSource,
        Step::Transcode,
        Step::ExportMp3,
        Step::StoreMp3,
        Step::SendEmail,
    ];

    /// The step's number in event ids (`running.3.1.40`): fixed for good, so that ids stay the
    /// same across versions; steps added later get the next numbers, wherever they run.
    pub fn number(self) -> u8 {
        match self {
            Self::ValidateToken => 1,
            Self::FetchSource => 2,
            Self::Transcode => 3,
            Self::StoreMp3 => 4,
            Self::SendEmail => 5,
            Self::ImportSource => 6,
            Self::ExportMp3 => 7,
        }
    }

    /// The activity type name registered with Temporal.
    pub fn activity_name(self) -> &'static str {
        match self {
            Self::ValidateToken => "validate_token",
            Self::ImportSource => "import_source",
            Self::FetchSource => "fetch_source",
            Self::Transcode => "transcode",
            Self::ExportMp3 => "export_mp3",
            Self::StoreMp3 => "store_mp3",
            Self::SendEmail => "send_email",
        }
    }

    pub fn from_activity_name(name: &str) -> Option<Self> {
        // A long source's parts and their join are its transcode, as users see it.
        if matches!(name, "transcode_segment" | "join_segments") {
            return Some(Self::Transcode);
        }
        Self::ALL
            .into_iter()
            .find(|step| step.activity_name() == name)
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.activity_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_map_to_activity_names_and_back() {
        for step in Step::ALL {
            assert_eq!(Step::from_activity_name(step.activity_name()), Some(step));
        }
        assert_eq!(Step::from_activity_name("other"), None);
    }
}
