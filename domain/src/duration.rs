//! Durations as people read them, in messages and progress lines.

/// `42 s`, `4 min 10 s`, `1 h 5 min`.
pub fn spoken(seconds: u64) -> String {
    match seconds {
        0..60 => format!("{seconds} s"),
        60..3600 => format!("{} min {} s", seconds / 60, seconds % 60),
        _ => format!("{} h {} min", seconds / 3600, seconds % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(spoken(5), "5 s");
        assert_eq!(spoken(250), "4 min 10 s");
        assert_eq!(spoken(3900), "1 h 5 min");
    }
}
