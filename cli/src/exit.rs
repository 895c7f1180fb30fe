//! How a command ended, as the process's exit status.

/// How a command ended, as the process's exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything asked for was done: 0.
    Success,
    /// Some of it failed (a refused file, a failed job); each was named: 1.
    Failed,
    /// Ctrl-C: 130, as shells report a process ended by SIGINT.
    Interrupted,
}

impl Exit {
    pub fn code(self) -> i32 {
        match self {
            Self::Success => 0,
            Self::Failed => 1,
            Self::Interrupted => 130,
        }
    }
}
