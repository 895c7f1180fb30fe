//! How the process gives memory back to the system.

/// Buffers of 256 KiB and more (upload parts on their way to S3, Argon2's working memory) get
/// mappings of their own, so freeing one returns it to the system at once.
///
/// Left alone, glibc raises its mmap threshold after the first large buffer is freed and from
/// then on serves such buffers from per-thread arenas, which keep the memory: a gateway that has
/// streamed one 1 GB upload into S3 keeps holding ~35 MB it no longer uses, and one login
/// another ~19 MB. With the threshold fixed, the same upload peaks ~10 MB above the idle gateway
/// and falls back after it (`make bench`).
pub fn free_large_buffers_promptly() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt takes the allocator's lock and only changes one of its tuning values;
    // `main` calls it before any other thread starts.
    #[allow(unsafe_code)]
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;
    use audiomill_store::PART_SIZE;

    fn anonymous_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("RssAnon:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// Upload parts as `put_stream` makes them, between the small allocations a server makes
    /// all the time: each freed part must leave the process, not stay behind in the heap.
    #[test]
    fn freed_upload_parts_leave_the_process() {
        free_large_buffers_promptly();
        // One part made and freed first, as every upload does.
        drop(vec![1u8; PART_SIZE]);
        let mut parts = Vec::new();
        let mut small = Vec::new();
        for _ in 0..4 {
            parts.push(vec![1u8; PART_SIZE]);
            small.push(vec![1u8; 64]);
        }
        let holding = anonymous_kib();
        drop(parts);
        let after = anonymous_kib();
        drop(small);
        assert!(
            holding.saturating_sub(after) >= 3 * PART_SIZE as u64 / 1024,
            "freeing four {} KiB parts gave back only {} KiB",
            PART_SIZE / 1024,
            holding.saturating_sub(after)
        );
    }
}
