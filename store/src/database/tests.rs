//! The tests of `database`, and the fresh database the other modules' tests start from.

use super::*;

/// A fresh, migrated database: SQLite in a temporary directory, or a new MariaDB database
/// when the suite runs on the production backends (see `scripts/test.sh`).
pub(crate) async fn fresh() -> (tempfile::TempDir, Database) {
    let dir = tempfile::tempdir().unwrap();
    let url = match std::env::var("AUDIOMILL_TEST_BACKENDS").as_deref() {
        Ok("production") => {
            use sqlx::Connection;
            let server = std::env::var("TEST_MYSQL_URL").expect("TEST_MYSQL_URL is set");
            let name = format!("store_{}", uuid::Uuid::new_v4().simple());
            let mut connection = sqlx::MySqlConnection::connect(&server).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE `{name}`")))
                .execute(&mut connection)
                .await
                .unwrap();
            format!("{server}/{name}")
        }
        _ => format!("sqlite://{}", dir.path().join("test.db").display()),
    };
    let db = Database::connect(&url).await.unwrap();
    db.migrate().await.unwrap();
    (dir, db)
}

#[tokio::test]
async fn a_second_user_with_the_same_email_is_a_conflict() {
    let (_dir, db) = fresh().await;
    let email = EmailAddress::parse("ann@example.com").unwrap();
    db.create_user(&email, "hash", false).await.unwrap();
    assert!(matches!(
        db.create_user(&email, "hash", true).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(db.count_users().await.unwrap(), 1);
}

#[tokio::test]
async fn a_refresh_token_rotates_once_and_its_reuse_revokes_the_session() {
    let (_dir, db) = fresh().await;
    let user = db
        .create_user(
            &EmailAddress::parse("bob@example.com").unwrap(),
            "hash",
            false,
        )
        .await
        .unwrap();
    let later = now_millis() + 60_000;
    db.create_session(user.id, "s1", "first", later)
        .await
        .unwrap();
    assert!(db.session_is_active(user.id, "s1").await.unwrap());

    let rotated = db
        .rotate_refresh_token("first", "second", later)
        .await
        .unwrap();
    assert_eq!(
        rotated,
        RefreshOutcome::Rotated {
            user_id: user.id,
            session_id: "s1".into()
        }
    );
    assert_eq!(
        db.rotate_refresh_token("first", "third", later)
            .await
            .unwrap(),
        RefreshOutcome::Reused
    );
    assert!(!db.session_is_active(user.id, "s1").await.unwrap());
    // The legitimate successor dies with its family.
    assert_eq!(
        db.rotate_refresh_token("second", "fourth", later)
            .await
            .unwrap(),
        RefreshOutcome::Invalid
    );
    assert_eq!(
        db.rotate_refresh_token("unknown", "x", later)
            .await
            .unwrap(),
        RefreshOutcome::Invalid
    );
}

#[tokio::test]
async fn a_notification_can_be_claimed_only_once_until_released() {
    let (_dir, db) = fresh().await;
    let job = NewJob {
        id: JobId::generate(),
        user_id: UserId::generate(),
        original_filename: "Überraschung 日本 🎬.mp4".into(),
        source_key: ObjectKey::parse("sources/x.mp4").unwrap(),
        source_size: 10,
        options: audiomill_domain::output::Preset::Podcast.options(),
        batch_id: Some(audiomill_domain::BatchId::generate()),
        session_id: None,
        import: None,
        export: None,
    };
    db.insert_job(&job).await.unwrap();
    assert!(db.claim_notification(job.id).await.unwrap());
    assert!(!db.claim_notification(job.id).await.unwrap());
    db.release_notification(job.id).await.unwrap();
    assert!(db.claim_notification(job.id).await.unwrap());

    assert!(
        db.record_mp3(job.id, &ObjectKey::mp3(job.id), 1234, 10_000)
            .await
            .unwrap()
    );
    let stored = db.job(job.id).await.unwrap().unwrap();
    assert_eq!(stored.outcome, Some(JobStatus::Completed));
    assert_eq!(stored.original_filename, "Überraschung 日本 🎬.mp4");
    assert_eq!(stored.options, job.options);
    assert_eq!(stored.batch_id, job.batch_id);
    let batch = db
        .batch_jobs(job.user_id, job.batch_id.unwrap())
        .await
        .unwrap();
    assert_eq!(batch.len(), 1);
    assert!(
        db.batch_jobs(UserId::generate(), job.batch_id.unwrap())
            .await
            .unwrap()
            .is_empty(),
        "another user's batch is not found"
    );
    assert_eq!(stored.mp3_size, Some(1234));
    assert_eq!(stored.duration_ms, Some(10_000));
    assert!(stored.completed_at.is_some());
}

async fn new_job(db: &Database) -> JobId {
    let id = JobId::generate();
    db.insert_job(&NewJob {
        id,
        user_id: UserId::generate(),
        original_filename: "a.mp4".into(),
        source_key: ObjectKey::parse(&format!("sources/{id}.mp4")).unwrap(),
        source_size: 10,
        options: Default::default(),
        batch_id: None,
        session_id: None,
        import: None,
        export: None,
    })
    .await
    .unwrap();
    id
}

#[tokio::test]
async fn a_job_ends_once_and_a_retried_store_is_not_a_second_completion() {
    let (_dir, db) = fresh().await;
    let key = |id| ObjectKey::mp3(id);

    let completed = new_job(&db).await;
    assert!(
        db.record_mp3(completed, &key(completed), 1, 1)
            .await
            .unwrap()
    );
    assert!(
        !db.record_mp3(completed, &key(completed), 1, 1)
            .await
            .unwrap()
    );
    assert!(
        !db.record_ending(completed, &JobEnding::Cancelled)
            .await
            .unwrap()
    );
    assert_eq!(
        db.job(completed).await.unwrap().unwrap().outcome,
        Some(JobStatus::Completed)
    );

    let failed = new_job(&db).await;
    let ending = JobEnding::Failed {
        failure_type: "CorruptMedia".into(),
    };
    assert!(db.record_ending(failed, &ending).await.unwrap());
    assert!(!db.record_ending(failed, &ending).await.unwrap());
    assert_eq!(
        db.job(failed).await.unwrap().unwrap().outcome,
        Some(JobStatus::Failed)
    );

    // An MP3 that arrives after the job was cancelled does not revive it.
    let cancelled = new_job(&db).await;
    assert!(
        db.record_ending(cancelled, &JobEnding::Cancelled)
            .await
            .unwrap()
    );
    assert!(matches!(
        db.record_mp3(cancelled, &key(cancelled), 1, 1).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        db.record_mp3(JobId::generate(), &key(cancelled), 1, 1)
            .await,
        Err(StoreError::NotFound)
    ));
}
