//! A part of a long source read in place over HTTP, as a worker that does not hold the job
//! reads it from the bucket: the same MP3 as from a local file, made from the byte ranges the
//! demuxer seeks to, not the whole file; and storage failing is never the media's fault.

use audiomill_activities::transcode::{
    MediaLimits, SegmentSettings, SourceLocation, TranscodeError, plan, transcode_part,
};
use audiomill_domain::{in_parts::SegmentPlan, output::OutputOptions};
use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    ops::ControlFlow,
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

/// Serves one file over HTTP/1.1 with byte ranges, counting the bytes it sends.
struct RangeServer {
    url: String,
    sent: Arc<AtomicU64>,
}

impl RangeServer {
    fn serve(file: PathBuf) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/source", listener.local_addr().unwrap());
        let sent = Arc::new(AtomicU64::new(0));
        let counter = sent.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (file, counter) = (file.clone(), counter.clone());
                std::thread::spawn(move || answer(stream, &file, &counter));
            }
        });
        Self { url, sent }
    }
}

/// Answers one request (`Range: bytes=a-` or `a-b`, or none) and closes the connection.
fn answer(stream: TcpStream, file: &Path, sent: &AtomicU64) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut range = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
            let (start, end) = value.trim().split_once('-').unwrap();
            range = Some((start.parse::<u64>().unwrap(), end.parse::<u64>().ok()));
        }
    }
    let bytes = std::fs::read(file).unwrap();
    let size = bytes.len() as u64;
    let (start, end) = range.map_or((0, size - 1), |(start, end)| {
        (start, end.unwrap_or(size - 1).min(size - 1))
    });
    let mut stream = stream;
    // A small send buffer: what a reader that hangs up early never took is not counted as
    // sent (the kernel would otherwise take megabytes ahead of the reader).
    let _ = socket2::SockRef::from(&stream).set_send_buffer_size(64 * 1024);
    let head = if start >= size {
        format!(
            "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{size}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
    } else if range.is_some() {
        format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {start}-{end}/{size}\r\n\
             Content-Length: {}\r\nAccept-Ranges: bytes\r\nConnection: close\r\n\r\n",
            end - start + 1
        )
    } else {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {size}\r\nAccept-Ranges: bytes\r\n\
             Connection: close\r\n\r\n"
        )
    };
    if stream.write_all(head.as_bytes()).is_err() || start >= size {
        return;
    }
    // In small writes, so that what a reader that hangs up early never took is not counted.
    for chunk in bytes[start as usize..=end as usize].chunks(16 * 1024) {
        if stream.write_all(chunk).is_err() {
            return;
        }
        sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
    }
    let _ = stream.flush();
    let _ = stream.read(&mut [0; 1]);
}

/// A URL answered with `status` and nothing else, whatever is asked of it.
fn refusing(status: &'static str, size: u64) -> SourceLocation {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/source", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut request = [0; 4096];
            let _ = stream.read(&mut request);
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    SourceLocation::Url { url, size }
}

/// A minute of a sine with a picture that changes, nearly all of it video, as a camera
/// records: the audio of any part is spread between the video of its seconds.
fn camera_video(dir: &Path) -> PathBuf {
    let mp4 = dir.join("camera.mp4");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=f=440:r=48000"])
        .args(["-t", "60", "-c:v", "mpeg4", "-b:v", "8M", "-c:a", "aac"])
        .arg(&mp4)
        .status()
        .unwrap();
    assert!(status.success());
    mp4
}

/// The camera video, its size, and its plan in parts of 8 s.
fn camera_video_in_parts(dir: &Path) -> (PathBuf, u64, SegmentPlan) {
    let mp4 = camera_video(dir);
    let size = std::fs::metadata(&mp4).unwrap().len();
    let plan = plan_of(&mp4);
    (mp4, size, plan)
}

fn plan_of(mp4: &Path) -> SegmentPlan {
    let settings = SegmentSettings {
        min_seconds: 10,
        share_seconds: 8,
        max_parts: None,
    };
    plan(
        &SourceLocation::file(mp4),
        &OutputOptions::default(),
        MediaLimits::default(),
        settings,
    )
    .expect("the source opens")
    .expect("a minute goes in parts")
}

fn part(
    source: &SourceLocation,
    plan: &SegmentPlan,
    part: usize,
    out: &Path,
) -> Result<(), TranscodeError> {
    transcode_part(
        source,
        out,
        &OutputOptions::default(),
        "camera.mp4",
        MediaLimits::default(),
        (plan, part),
        &mut |_| ControlFlow::Continue(()),
    )
    .map(|_| ())
}

#[test]
fn a_part_read_over_http_is_the_same_mp3_from_only_its_share_of_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (mp4, size, plan) = camera_video_in_parts(dir.path());
    assert!(plan.parts() >= 4, "{plan:?}");
    let server = RangeServer::serve(mp4.clone());
    let remote = SourceLocation::Url {
        url: server.url.clone(),
        size,
    };
    // The first part (with the tag), one from the middle, and the last.
    for index in [0, plan.parts() / 2, plan.parts() - 1] {
        let (local_mp3, remote_mp3) = (dir.path().join("local.mp3"), dir.path().join("remote.mp3"));
        part(&SourceLocation::file(&mp4), &plan, index, &local_mp3).unwrap();
        server.sent.store(0, Ordering::Relaxed);
        part(&remote, &plan, index, &remote_mp3).unwrap();
        assert!(
            std::fs::read(&local_mp3).unwrap() == std::fs::read(&remote_mp3).unwrap(),
            "part {index} differs when read over HTTP"
        );
        let sent = server.sent.load(Ordering::Relaxed);
        eprintln!(
            "part {index} of {}: {sent} of {size} bytes read",
            plan.parts()
        );
        assert!(
            sent < size / 2,
            "part {index} of {} read {sent} of the source's {size} bytes",
            plan.parts()
        );
    }
}

#[test]
fn storage_failing_under_a_part_is_worth_another_attempt_not_the_medias_fault() {
    let dir = tempfile::tempdir().unwrap();
    let (_, size, plan) = camera_video_in_parts(dir.path());
    let out = dir.path().join("part.mp3");
    // Bound, never listening, and kept so: connecting is refused, and no other server can
    // take the port meanwhile.
    let closed = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    closed
        .bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    let gone = closed.local_addr().unwrap().as_socket().unwrap();
    let unreachable = SourceLocation::Url {
        url: format!("http://{gone}/source"),
        size,
    };
    // The object is gone, or the URL expired: S3 answers 404 or 403.
    let sources = [
        unreachable,
        refusing("404 Not Found", size),
        refusing("403 Forbidden", size),
    ];
    for source in sources {
        match part(&source, &plan, 1, &out) {
            Err(TranscodeError::Output(why)) => {
                assert!(why.contains("storage"), "{why}");
            }
            other => panic!("{source:?}: {other:?}"),
        }
    }
}
