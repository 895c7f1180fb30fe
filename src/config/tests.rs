//! The tests of `config`.

use super::*;
use std::collections::HashMap;

fn parse(vars: &[(&str, &str)]) -> anyhow::Result<(Config, GatewayConfig, WorkerConfig)> {
    let mut vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    vars.entry("DATA_DIR".into()).or_insert("/srv/am".into());
    DevArgs::from_vars(&vars)?.resolve(false)
}

#[test]
fn parts_are_capped_as_set_or_by_dev_s_transcode_slots() {
    let max_parts = |vars: &[(&str, &str)]| {
        let (_, _, worker) = parse(vars).unwrap();
        worker.segments.unwrap().max_parts
    };
    assert_eq!(max_parts(&[("MAX_CONCURRENT_TRANSCODES", "3")]), Some(3));
    assert_eq!(max_parts(&[("SEGMENT_MAX_PARTS", "5")]), Some(5));
    assert_eq!(max_parts(&[("SEGMENT_MAX_PARTS", "0")]), None);
    assert!(parse(&[("SEGMENT_MAX_PARTS", "many")]).is_err());
}

#[test]
fn defaults_are_the_embedded_mode() {
    let (config, gateway, worker) = parse(&[]).unwrap();
    assert_eq!(
        config.database_url.expose(),
        "sqlite:///srv/am/audiomill.db"
    );
    assert!(
        matches!(&config.storage, StorageConfig::Files { root } if root == Path::new("/srv/am/objects"))
    );
    assert_eq!(
        config.mail,
        MailConfig::Files {
            dir: "/srv/am/mail".into()
        }
    );
    assert_eq!(gateway.max_file_size_mb, 100);
    assert_eq!(
        gateway.allowed_extensions,
        [
            "mp4", "avi", "mov", "mkv", "webm", "mp3", "m4a", "wav", "flac", "ogg", "opus"
        ]
    );
    assert_eq!(gateway.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(config.temporal_address, None);
    assert_eq!(worker.work_dir, Path::new("/srv/am/work"));
    assert_eq!(worker.media_limits, MediaLimits::default());
    // `dev` is its own only worker: no more parts than it converts at once.
    assert_eq!(
        worker.segments,
        Some(SegmentSettings {
            max_parts: Some(worker.max_concurrent_transcodes as u32),
            ..SegmentSettings::default()
        })
    );
    assert_eq!(config.links.lifetime.as_secs(), 72 * 3600);
    assert_eq!(config.links.secret, None);
    assert_eq!(config.links.public_url, None);
    assert_eq!(
        gateway.download_redirect, None,
        "the gateway streams by default"
    );
    let (_, redirecting, _) = parse(&[
        ("DOWNLOAD_REDIRECT", "true"),
        ("DOWNLOAD_REDIRECT_SECONDS", "60"),
    ])
    .unwrap();
    assert_eq!(
        redirecting.download_redirect,
        Some(std::time::Duration::from_secs(60))
    );
}

#[test]
fn unsupported_backends_and_bad_values_are_refused_with_a_sentence() {
    let s3 = [
        ("S3_BUCKET", "b"),
        ("AWS_ACCESS_KEY_ID", "k"),
        ("AWS_SECRET_ACCESS_KEY", "s"),
    ];
    for (name, value) in [
        ("DATABASE_URL", "postgres://x"),
        ("SMTP_URL", "http://mail"),
        ("MAX_FILE_SIZE", "lots"),
        ("MAX_FILE_SIZE", "0"),
        ("ALLOWED_EXTENSIONS", "mp4,exe"),
        ("LISTEN_ADDR", "everywhere"),
        ("S3_CREATE_BUCKET", "maybe"),
        ("AWS_ENDPOINT_URL", "minio:9000"),
        ("CORS_ALLOWED_ORIGINS", "app.example.com"),
        ("RATE_LIMIT_PER_MINUTE", "none"),
        ("MAX_CONCURRENT_TRANSCODES", "-1"),
        ("JWT_SECRET", "short-key"),
        ("DOWNLOAD_LINK_SECRET", "short-key"),
        ("DOWNLOAD_LINK_HOURS", "0"),
        ("DOWNLOAD_LINK_HOURS", "8761"),
        ("DOWNLOAD_REDIRECT", "sometimes"),
        ("DOWNLOAD_REDIRECT_SECONDS", "0"),
        ("DOWNLOAD_REDIRECT_SECONDS", "604801"),
        ("PUBLIC_URL", "audiomill.example.com"),
    ] {
        let mut vars = s3.to_vec();
        vars.push((name, value));
        let error = parse(&vars).expect_err(name).to_string();
        assert!(
            error.ends_with('.') && error.contains(name) && !error.contains('\n'),
            "{name}: {error}"
        );
    }
    let error = parse(&[("S3_BUCKET", "videos")]).unwrap_err().to_string();
    assert!(error.contains("AWS_ACCESS_KEY_ID"), "{error}");
}

#[test]
fn a_refused_secret_is_not_repeated() {
    for (name, value) in [
        ("DATABASE_URL", "postgres://app:db-password@db/x"),
        ("JWT_SECRET", "short-secret"),
        ("SMTP_URL", "http://user:mail-password@host"),
    ] {
        let error = parse(&[(name, value)]).unwrap_err().to_string();
        assert!(!error.contains(value), "{error}");
    }
}

#[test]
fn s3_settings_come_from_the_conventional_names() {
    let (config, _, _) = parse(&[
        ("S3_BUCKET", "videos"),
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"),
        ("AWS_ACCESS_KEY_ID", "key"),
        ("AWS_SECRET_ACCESS_KEY", "secret-key-value"),
        ("S3_CREATE_BUCKET", "true"),
    ])
    .unwrap();
    let StorageConfig::S3 {
        settings,
        create_bucket,
    } = &config.storage
    else {
        panic!("not S3")
    };
    assert_eq!(settings.bucket, "videos");
    assert_eq!(settings.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
    assert_eq!(settings.region, "us-east-1");
    assert!(create_bucket);
    assert!(!format!("{config:?}").contains("secret-key-value"));
}

#[test]
fn secrets_do_not_print() {
    let vars = [
        ("JWT_SECRET", "super-secret-value-that-is-long-enough"),
        ("SMTP_URL", "smtp://user:pw@host:25"),
        ("DATABASE_URL", "mysql://app:db-password@db:3306/audiomill"),
        ("REDIS_URL", "redis://:redis-password@cache:6379"),
    ];
    let (config, gateway, worker) = parse(&vars).unwrap();
    let printed = format!("{config:?} {gateway:?} {worker:?}");
    assert!(
        !printed.contains("super-secret-value")
            && !printed.contains("pw@host")
            && !printed.contains("db-password")
            && !printed.contains("redis-password"),
        "{printed}"
    );
}

#[test]
fn values_are_trimmed_and_lists_normalised() {
    let (_, gateway, _) = parse(&[
        ("MAX_FILE_SIZE", " 20 "),
        ("ALLOWED_EXTENSIONS", " .MP4, mov ,"),
        ("CORS_ALLOWED_ORIGINS", "https://app.example.com/"),
    ])
    .unwrap();
    assert_eq!(gateway.max_file_size_mb, 20);
    assert_eq!(gateway.allowed_extensions, ["mp4", "mov"]);
    assert_eq!(gateway.cors_allowed_origins, ["https://app.example.com"]);
}

#[test]
fn unknown_settings_are_refused() {
    let error = parse(&[("MAX_FILESIZE", "20")]).unwrap_err().to_string();
    assert!(error.contains("MAX_FILESIZE"), "{error}");
}

#[test]
fn the_public_address_is_read_under_either_name() {
    for name in ["PUBLIC_URL", "PUBLIC_BASE_URL"] {
        let (config, _, _) = parse(&[(name, "https://audio.example.com")]).unwrap();
        assert_eq!(
            config.links.public_url.as_deref(),
            Some("https://audio.example.com"),
            "{name}"
        );
    }
    let (name, value) = ("PUBLIC_BASE_URL", "audio.example.com");
    let error = parse(&[(name, value)]).unwrap_err().to_string();
    assert!(error.contains(name), "{error}");
    let both = [
        ("PUBLIC_URL", "https://a.example.com"),
        ("PUBLIC_BASE_URL", "https://b.example.com"),
    ];
    assert!(
        parse(&both).is_err(),
        "two addresses are refused, not one chosen"
    );
}
