//! Converts one file with the same code the `transcode` activity runs, and prints how long it
//! took: `cargo run --example transcode -- INPUT OUTPUT.mp3`. Used by `make bench`.

use audiomill_activities::transcode::{MediaLimits, Mp3Settings, transcode};
use std::{ops::ControlFlow, path::PathBuf, time::Instant};

fn main() {
    let mut args = std::env::args().skip(1).map(PathBuf::from);
    let (Some(input), Some(output)) = (args.next(), args.next()) else {
        eprintln!("usage: transcode INPUT OUTPUT.mp3");
        std::process::exit(2);
    };
    let started = Instant::now();
    match transcode(
        &input,
        &output,
        Mp3Settings::default(),
        MediaLimits::default(),
        &mut |_| ControlFlow::Continue(()),
    ) {
        Ok(report) => println!(
            "{:.3} s for {:.1} s of audio",
            started.elapsed().as_secs_f64(),
            report.duration_ms as f64 / 1000.0
        ),
        Err(error) => {
            eprintln!("transcode failed: {error}");
            std::process::exit(1);
        }
    }
}
