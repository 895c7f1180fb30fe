//! Listing jobs newest first, a page at a time. Pages are cut by keyset (the last job's
//! creation time and id), never by offset: a page's cursor stays valid however many jobs are
//! added meanwhile, and reading page 1 000 costs what reading page 1 does (the
//! `jobs_user_created` and `jobs_created` indexes give the order).

use crate::{
    database::Database,
    database::Job,
    database::{JOB_COLUMNS, job_from_row},
    error::StoreError,
};
use audiomill_domain::{JobId, JobStatus, UserId};
use sqlx::{AssertSqlSafe, any::AnyArguments, query::Query};

/// Which jobs a listing shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    /// One user's jobs; `None`: everyone's.
    pub owner: Option<UserId>,
    /// How the jobs ended; `Some(None)`: jobs still in progress.
    pub outcome: Option<Option<JobStatus>>,
    /// Created at or after this time (Unix milliseconds).
    pub created_from: Option<i64>,
    /// Created before this time.
    pub created_before: Option<i64>,
}

/// Where the previous page ended: its last job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageAfter {
    pub created_at: i64,
    pub id: JobId,
}

impl Database {
    /// Up to `limit` jobs matching `filter`, newest first, after `after`; and whether more
    /// follow.
    pub async fn list_jobs(
        &self,
        filter: &JobFilter,
        after: Option<PageAfter>,
        limit: u32,
    ) -> Result<(Vec<Job>, bool), StoreError> {
        let mut conditions = vec!["1 = 1"];
        if filter.owner.is_some() {
            conditions.push("user_id = ?");
        }
        match filter.outcome {
            Some(Some(_)) => conditions.push("outcome = ?"),
            Some(None) => conditions.push("outcome IS NULL"),
            None => {}
        }
        if filter.created_from.is_some() {
            conditions.push("created_at >= ?");
        }
        if filter.created_before.is_some() {
            conditions.push("created_at < ?");
        }
        if after.is_some() {
            conditions.push("(created_at < ? OR (created_at = ? AND id < ?))");
        }
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE {} ORDER BY created_at DESC, id DESC LIMIT {}",
            conditions.join(" AND "),
            u64::from(limit) + 1
        );
        let mut query: Query<'static, sqlx::Any, AnyArguments> = sqlx::query(AssertSqlSafe(sql));
        if let Some(owner) = filter.owner {
            query = query.bind(owner.to_string());
        }
        if let Some(Some(outcome)) = filter.outcome {
            query = query.bind(outcome.as_str());
        }
        if let Some(from) = filter.created_from {
            query = query.bind(from);
        }
        if let Some(before) = filter.created_before {
            query = query.bind(before);
        }
        if let Some(after) = after {
            query = query
                .bind(after.created_at)
                .bind(after.created_at)
                .bind(after.id.to_string());
        }
        let mut jobs = query
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(job_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let more = jobs.len() > limit as usize;
        jobs.truncate(limit as usize);
        Ok((jobs, more))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{database::NewJob, database::tests::fresh};
    use audiomill_domain::{ObjectKey, contract::JobEnding};

    #[tokio::test]
    async fn pages_follow_each_other_without_gaps_or_repeats_even_on_equal_times() {
        let (_dir, db) = fresh().await;
        let owner = UserId::generate();
        let mut ids = Vec::new();
        for n in 0..7 {
            let id = JobId::generate();
            db.insert_job(&NewJob {
                id,
                user_id: if n == 3 { UserId::generate() } else { owner },
                original_filename: "a.mp4".into(),
                source_key: ObjectKey::parse(&format!("sources/{id}.mp4")).unwrap(),
                source_size: 1,
                options: Default::default(),
                batch_id: None,
                session_id: None,
                import: None,
                export: None,
            })
            .await
            .unwrap();
            // Pairs share a creation time, so the id decides between them.
            sqlx::query("UPDATE jobs SET created_at = ? WHERE id = ?")
                .bind(1_000 + n / 2)
                .bind(id.to_string())
                .execute(&db.pool)
                .await
                .unwrap();
            if n != 3 {
                ids.push(id);
            }
        }
        let mine = JobFilter {
            owner: Some(owner),
            ..JobFilter::default()
        };
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let (jobs, more) = db.list_jobs(&mine, after, 2).await.unwrap();
            seen.extend(jobs.iter().map(|job| job.id));
            let Some(last) = jobs.last() else { break };
            after = Some(PageAfter {
                created_at: last.created_at,
                id: last.id,
            });
            if !more {
                break;
            }
        }
        ids.reverse();
        assert_eq!(seen, ids);

        db.record_ending(ids[0], &JobEnding::Cancelled)
            .await
            .unwrap();
        let cancelled = JobFilter {
            outcome: Some(Some(JobStatus::Cancelled)),
            ..mine.clone()
        };
        let (jobs, more) = db.list_jobs(&cancelled, None, 10).await.unwrap();
        assert_eq!((jobs.len(), more), (1, false));
        let running = JobFilter {
            outcome: Some(None),
            created_from: Some(1_001),
            created_before: Some(1_003),
            ..mine
        };
        let (jobs, _) = db.list_jobs(&running, None, 10).await.unwrap();
        assert_eq!(jobs.len(), 3, "times 1001 and 1002, less the other user's");
        let (everyone, _) = db.list_jobs(&JobFilter::default(), None, 10).await.unwrap();
        assert_eq!(everyone.len(), 7);
    }
}
