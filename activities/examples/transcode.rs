//! Converts one file with the same code the `transcode` activity runs, and prints how long it
//! took: `cargo run --example transcode -- INPUT OUTPUT.mp3 [FIELD=VALUE...]`, the fields those
//! of an upload form (`bitrate_mode=cbr bitrate=128`, `normalize=true`, ...). Used by
//! `make bench`.

use audiomill_activities::transcode::{MediaLimits, SourceLocation, transcode};
use audiomill_domain::output::OutputRequest;
use std::{ops::ControlFlow, path::PathBuf, time::Instant};

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(input), Some(output)) = (args.next(), args.next()) else {
        eprintln!("usage: transcode INPUT OUTPUT.mp3 [FIELD=VALUE...]");
        std::process::exit(2);
    };
    let mut request = OutputRequest::default();
    for field in args {
        let added = match field.split_once('=') {
            Some((name, value)) => request.add(name, value).map_err(|e| e.to_string()),
            None => Err(format!("`{field}` is not FIELD=VALUE")),
        };
        if let Err(error) = added {
            eprintln!("transcode: {error}");
            std::process::exit(2);
        }
    }
    let options = request.resolve().unwrap_or_else(|error| {
        eprintln!("transcode: {error}");
        std::process::exit(2);
    });
    let started = Instant::now();
    match transcode(
        &SourceLocation::file(&input),
        &PathBuf::from(output),
        &options,
        &input,
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
