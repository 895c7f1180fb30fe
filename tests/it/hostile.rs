//! Hostile requests against a gateway process of its own, whose memory and CPU are read from
//! the kernel: request bodies in every spelling of JSON, multipart forms with no boundary,
//! endless part headers or junk fields, HTTP/2 spoken without asking, and more connections
//! than the gateway serves. Each must be refused quickly with memory flat.

use crate::common;

use common::*;
use reqwest::StatusCode;
use std::{
    collections::HashMap,
    time::{Duration, Instant},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// What the server answered a raw request, and when.
struct Answer {
    status: u16,
    head: String,
    took: Duration,
}

/// Sends `head`, then `total` body bytes made of `chunk` repeated (as fast as the server
/// reads them), or until the server answers; returns its answer. Like a hostile client, it
/// does not wait for the server to ask for the body.
async fn send_raw(address: &str, head: &str, chunk: &[u8], total: usize) -> Answer {
    let started = Instant::now();
    let stream = TcpStream::connect(address).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let (head, chunk) = (head.to_owned(), chunk.to_vec());
    let writing = tokio::spawn(async move {
        writer.write_all(head.as_bytes()).await?;
        let mut sent = 0;
        while sent < total {
            let n = chunk.len().min(total - sent);
            writer.write_all(&chunk[..n]).await?;
            sent += n;
        }
        Ok::<_, std::io::Error>(writer)
    });
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    // The head, then as much of the (small, error) body as it announces.
    let complete = |received: &[u8]| {
        let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") else {
            return false;
        };
        let head = String::from_utf8_lossy(&received[..end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        received.len() >= end + 4 + length
    };
    let read = tokio::time::timeout(Duration::from_secs(60), async {
        while !complete(&received) {
            match reader.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    writing.abort();
    assert!(read.is_ok(), "no answer within 60 s");
    let head = String::from_utf8_lossy(&received).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Answer {
        status,
        head,
        took: started.elapsed(),
    }
}

fn post_head(path: &str, content_type: Option<&str>, length: usize, token: Option<&str>) -> String {
    let mut head =
        format!("POST {path} HTTP/1.1\r\nHost: audiomill\r\nContent-Length: {length}\r\n");
    if let Some(content_type) = content_type {
        head.push_str(&format!("Content-Type: {content_type}\r\n"));
    }
    if let Some(token) = token {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    head.push_str("\r\n");
    head
}

const MIB: usize = 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_in_every_spelling_of_json_are_capped_before_they_are_buffered() {
    let gateway = GatewayProcess::start(&[]).await;
    let usage = Usage::of(&gateway.process);
    let before = usage.resident_mib();
    usage.reset_peak();
    let junk = vec![b'x'; 64 * 1024];
    let mut answers = HashMap::new();
    for content_type in [
        Some("application/json"),
        Some("application/x+json"),
        Some("Application/Problem+JSON; charset=utf-8"),
        None,
        Some("text/plain"),
        Some("application/octet-stream"),
    ] {
        let head = post_head("/token/refresh", content_type, 200 * MIB, None);
        let answer = send_raw(&gateway.address, &head, &junk, 200 * MIB).await;
        answers.insert(content_type.unwrap_or("none"), answer.status);
        assert!(
            answer.took < Duration::from_secs(10),
            "{content_type:?} took {:?}",
            answer.took
        );
    }
    let grew = usage.peak_mib() - before;
    assert_eq!(answers["application/json"], 413, "{answers:?}");
    assert_eq!(answers["application/x+json"], 413, "{answers:?}");
    assert_eq!(
        answers["Application/Problem+JSON; charset=utf-8"], 413,
        "{answers:?}"
    );
    assert_eq!(answers["none"], 413, "{answers:?}");
    assert_eq!(answers["text/plain"], 415, "{answers:?}");
    assert_eq!(answers["application/octet-stream"], 415, "{answers:?}");
    assert!(
        grew < 30.0,
        "six 200 MB bodies raised the peak by {grew:.0} MiB"
    );

    // A `+json` body dripped a byte every 2 s is cut off by the body deadline.
    let head = post_head("/token/refresh", Some("application/x+json"), 100, None);
    let started = Instant::now();
    let mut stream = TcpStream::connect(&gateway.address).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = String::new();
    for _ in 0..20 {
        let _ = stream.write_all(b"{").await;
        let mut buffer = [0u8; 1024];
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buffer)).await
        {
            answer = String::from_utf8_lossy(&buffer[..n]).into_owned();
            break;
        }
    }
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(started.elapsed() < Duration::from_secs(15));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_forms_are_refused_with_memory_flat_and_cpu_linear() {
    let gateway = GatewayProcess::start(&[]).await;
    let token = gateway.token().await;
    let usage = Usage::of(&gateway.process);
    let before = usage.resident_mib();
    usage.reset_peak();
    let cpu_before = usage.cpu_seconds();
    let upload = |length: usize| {
        post_head(
            "/upload",
            Some("multipart/form-data; boundary=XyZ"),
            length,
            Some(&token),
        )
    };

    // 150 MB without the boundary anywhere.
    let junk = vec![b'j'; 64 * 1024];
    let answer = send_raw(&gateway.address, &upload(150 * MIB), &junk, 150 * MIB).await;
    assert_eq!(answer.status, 400, "{}", answer.head);
    assert!(answer.head.contains("boundary"), "{}", answer.head);

    // A part whose headers never end.
    let mut opening =
        b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.mp4\"\r\nX-Junk: "
            .to_vec();
    opening.extend(std::iter::repeat_n(b'h', 64 * 1024 - opening.len()));
    let answer = send_raw(&gateway.address, &upload(50 * MIB), &opening, 50 * MIB).await;
    assert_eq!(answer.status, 400, "{}", answer.head);
    assert!(answer.head.contains("headers"), "{}", answer.head);
    let cpu = usage.cpu_seconds() - cpu_before;

    // Many small parts before the file.
    let field = b"--XyZ\r\nContent-Disposition: form-data; name=\"junk\"\r\n\r\nx\r\n";
    let many: Vec<u8> = field.repeat(10_000);
    let answer = send_raw(&gateway.address, &upload(many.len()), &many, many.len()).await;
    assert_eq!(answer.status, 400, "{}", answer.head);
    assert!(
        answer.head.contains("more than 32 parts"),
        "{}",
        answer.head
    );

    // One large field that is not the file.
    let mut large = b"--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\n".to_vec();
    large.extend(std::iter::repeat_n(b'n', 2 * MIB));
    let answer = send_raw(&gateway.address, &upload(large.len()), &large, large.len()).await;
    assert_eq!(answer.status, 400, "{}", answer.head);
    assert!(answer.head.contains("64 KiB"), "{}", answer.head);

    let grew = usage.peak_mib() - before;
    assert!(
        grew < 40.0,
        "hostile forms raised the peak by {grew:.0} MiB"
    );
    // Scanning 200 MB is linear work: well under a second or two of CPU, not minutes.
    assert!(cpu < 10.0, "the two large bodies cost {cpu:.1} s of CPU");
    // Nothing was kept.
    let objects = gateway.test.objects();
    assert!(objects.is_empty(), "{objects:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_is_refused_and_connections_beyond_the_cap_wait() {
    let gateway = GatewayProcess::start(&[("MAX_CONNECTIONS", "4".into())]).await;

    // HTTP/2 with prior knowledge: refused at its first bytes, no HTTP/2 frames come back.
    let mut stream = TcpStream::connect(&gateway.address).await.unwrap();
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the connection was not closed");
    let text = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || text.starts_with("HTTP/1.1 4") || text.starts_with("HTTP/1.1 5"),
        "{text:?}"
    );
    drop(stream);

    // `Upgrade: h2c` is ignored: an ordinary HTTP/1.1 answer.
    let answer = send_raw(
        &gateway.address,
        "GET /health HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
        b"",
        0,
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.head);

    // Four silent connections take every place; a fifth client waits until one goes.
    let mut silent = Vec::new();
    for _ in 0..4 {
        silent.push(TcpStream::connect(&gateway.address).await.unwrap());
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for stream in &silent {
        let port = stream.local_addr().unwrap().port();
        while !gateway.process.has_accepted(port) {
            assert!(
                Instant::now() < deadline,
                "the gateway never took connection {port}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let health = format!("http://{}/health", gateway.address);
    assert!(
        client.get(&health).send().await.is_err(),
        "a fifth connection was served beyond the cap"
    );
    drop(silent);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(response) = client.get(&health).send().await {
            assert_eq!(response.status(), StatusCode::OK);
            break;
        }
        assert!(Instant::now() < deadline, "no place freed up");
    }
}
