//! A real Audiomill for tests: a Temporal dev server of its own (the `temporal` executable on
//! PATH, headless, in memory), the gateway on a free port and a worker, in a fresh data dir.
//!
//! With `AUDIOMILL_TEST_BACKENDS=production` (and the `TEST_*` variables that
//! `scripts/test-services.sh start` writes) the same tests run on the production backends:
//! a fresh MariaDB database, a fresh S3 bucket and the SMTP sink, per test.

mod gateway_process;
pub mod webhooks;

pub use gateway_process::GatewayProcess;

use audiomill::{
    Config, Roles, Running,
    config::{DevArgs, GatewayConfig, WorkerConfig},
    roles::Backends,
    temporal::DevServer,
    users,
};
pub use audiomill_test_kit::{
    ffmpeg, is_mp3, make_long_video, make_mp4, music_video, probe_audio, python_tool, raw_video,
};
use reqwest::{Method, Response, StatusCode, multipart};
use serde_json::Value;
use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

pub const JWT_SECRET: &str = "test-secret-that-is-long-enough-for-hs256";
pub const LINK_SECRET: &str = "test-link-secret-that-is-long-enough-too";
pub const PASSWORD: &str = "correct horse battery";

/// Which backends the suite runs on.
pub fn production_backends() -> bool {
    std::env::var("AUDIOMILL_TEST_BACKENDS").is_ok_and(|b| b == "production")
}

pub fn required(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run the suite through `make test`"))
}

pub struct TestApp {
    pub app: Option<Running>,
    /// The test's own connections to the database and storage.
    pub backends: Backends,
    /// The configuration as environment variables.
    pub vars: HashMap<String, String>,
    /// Every address this test mails to ends with `@{mail_domain}`.
    pub mail_domain: String,
    /// The S3 bucket, on the production backends.
    pub bucket: Option<String>,
    /// The SMTP sink's REST address, when mail goes over SMTP (else `.eml` files).
    pub maildev: Option<String>,
    pub base: String,
    pub http: reqwest::Client,
    pub data: tempfile::TempDir,
    pub config: Config,
    pub gateway: GatewayConfig,
    pub worker: WorkerConfig,
    temporal: Option<DevServer>,
    temporal_address: String,
    /// Where Temporal keeps its state, when it must survive a restart.
    temporal_db: Option<PathBuf>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    /// Starts the app with extra environment settings (e.g. `MAX_FILE_SIZE`).
    pub async fn spawn_with(settings: &[(&str, &str)]) -> Self {
        Self::without_app(settings).await.with_app().await
    }

    /// Everything but the app itself: Temporal, the backends, the configuration (also as
    /// environment variables in `vars`, for starting `audiomill` processes). `settings` win
    /// over the backends the suite runs on.
    pub async fn without_app(settings: &[(&str, &str)]) -> Self {
        Self::prepare(settings, false).await
    }

    /// [`TestApp::without_app`], with Temporal's state in a file, as
    /// [`TestApp::spawn_with_durable_temporal`] keeps it.
    pub async fn without_app_durable(settings: &[(&str, &str)]) -> Self {
        Self::prepare(settings, true).await
    }

    /// Like [`TestApp::spawn_with`], with Temporal's state in a file, so that
    /// [`TestApp::kill_temporal`] and [`TestApp::start_temporal`] lose nothing.
    pub async fn spawn_with_durable_temporal(settings: &[(&str, &str)]) -> Self {
        Self::prepare(settings, true).await.with_app().await
    }

    /// Like [`TestApp::spawn_with`], with the configuration changed by `tune` first (for what
    /// no environment variable sets, such as the transcoder's executable).
    pub async fn spawn_tuned(
        settings: &[(&str, &str)],
        tune: impl FnOnce(&mut WorkerConfig),
    ) -> Self {
        let mut test = Self::prepare(settings, false).await;
        tune(&mut test.worker);
        test.with_app().await
    }

    /// Starts gateway and worker on what [`TestApp::prepare`] set up.
    async fn with_app(mut self) -> Self {
        let mut attempts = 0;
        let app = loop {
            attempts += 1;
            match Running::start(&self.config, self.roles()).await {
                Ok(app) => break app,
                // The dev server died after it began answering (one of its other ports,
                // picked at random, was taken): start it again where it was.
                Err(error)
                    if attempts < 3 && self.temporal.as_mut().is_some_and(DevServer::exited) =>
                {
                    eprintln!("temporal dev server exited: {error:#}; again");
                    self.start_temporal().await;
                }
                Err(error) => panic!("the app starts: {error:?}"),
            }
        };
        self.base = app.base_url();
        self.app = Some(app);
        self
    }

    async fn prepare(settings: &[(&str, &str)], durable_temporal: bool) -> Self {
        let data = tempfile::tempdir().unwrap();
        let temporal_db = durable_temporal.then(|| data.path().join("temporal.db"));
        // A free port may be taken by a concurrent test (or by another dev server's ports,
        // which it picks at random) before the server binds it: the server then refuses to
        // start or exits at once. Try another.
        let mut attempts = 0;
        let (temporal, temporal_address) = loop {
            attempts += 1;
            let address = format!("127.0.0.1:{}", free_port());
            match DevServer::start(temporal_db.as_deref(), &address, None).await {
                Ok(server) => break (server, address),
                Err(error) if attempts < 5 => eprintln!("temporal dev server: {error:#}; again"),
                Err(error) => panic!("temporal dev server starts: {error:#}"),
            }
        };
        let mut vars: HashMap<String, String> = settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        vars.insert("TEMPORAL_ADDRESS".into(), temporal_address.clone());
        vars.insert("JWT_SECRET".into(), JWT_SECRET.into());
        vars.insert("DOWNLOAD_LINK_SECRET".into(), LINK_SECRET.into());
        vars.insert("DATA_DIR".into(), data.path().display().to_string());
        let unique = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let mut bucket = None;
        if production_backends() {
            let server = required("TEST_MYSQL_URL");
            let database = format!("am_{unique}");
            create_database(&server, &database).await;
            let name = format!("am-{unique}");
            let production = [
                ("DATABASE_URL", format!("{server}/{database}")),
                ("S3_BUCKET", name.clone()),
                ("S3_CREATE_BUCKET", "true".into()),
                ("AWS_ENDPOINT_URL", required("TEST_S3_ENDPOINT")),
                ("AWS_ACCESS_KEY_ID", required("TEST_S3_KEY")),
                ("AWS_SECRET_ACCESS_KEY", required("TEST_S3_SECRET")),
                ("SMTP_URL", required("TEST_SMTP_URL")),
            ];
            for (name, value) in production {
                vars.entry(name.into()).or_insert(value);
            }
            bucket = vars.get("S3_BUCKET").cloned();
        }
        let mut settings = vars.clone();
        settings.insert("LISTEN_ADDR".into(), "127.0.0.1:0".into());
        let (config, gateway, mut worker) = DevArgs::from_vars(&settings)
            .and_then(|args| args.resolve(false))
            .expect("test configuration is valid");
        // The worker runs transcodes in the audiomill binary, not in this test binary.
        worker.transcoder.executable = PathBuf::from(env!("CARGO_BIN_EXE_audiomill"));
        let backends = Backends::open(&config).await.expect("the backends open");
        Self {
            app: None,
            backends,
            vars,
            mail_domain: format!("{unique}.example.com"),
            maildev: production_backends().then(|| required("TEST_MAILDEV_URL")),
            bucket,
            base: String::new(),
            http: reqwest::Client::new(),
            data,
            config,
            gateway,
            worker,
            temporal: Some(temporal),
            temporal_address,
            temporal_db,
        }
    }

    /// Stops the app's worker (the gateway goes on): jobs wait for a worker.
    pub async fn stop_worker(&mut self) {
        self.app
            .as_mut()
            .expect("the app runs")
            .stop_worker()
            .await
            .expect("the worker stops");
    }

    /// Starts a worker of its own on this test's configuration.
    pub async fn start_worker(&self) -> Running {
        let roles = Roles {
            gateway: None,
            worker: Some(self.worker.clone()),
        };
        Running::start(&self.config, roles)
            .await
            .expect("a worker starts")
    }

    /// What is left in the workers' scratch space: every file and directory inside a worker's
    /// own directory (`WORK_DIR/worker-*/`; the directory and its lock are the worker's, not
    /// a job's).
    pub fn scratch_files(&self) -> Vec<PathBuf> {
        scratch_in(&self.worker.work_dir)
    }

    /// Kills the Temporal server (SIGKILL, no goodbye).
    pub async fn kill_temporal(&mut self) {
        if let Some(server) = self.temporal.take() {
            server.kill().await;
        }
    }

    /// Waits (up to 60 s) for a resumable upload to be whole while the conversion service is
    /// down, and checks that it stays held, with no job, for two seconds more.
    pub async fn wait_for_held_upload(&self) {
        let db = &self.backends.db;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            assert!(Instant::now() < deadline, "the upload never completed");
            tokio::time::sleep(Duration::from_millis(100)).await;
            let uploads = db.expired_resumables(i64::MAX, 10).await.unwrap();
            if uploads.iter().any(|upload| upload.is_complete()) {
                break;
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let uploads = db.expired_resumables(i64::MAX, 10).await.unwrap();
        assert!(
            uploads[0].started_at.is_none(),
            "no job while the service is down"
        );
    }

    /// Starts the Temporal server again on the same address and state file.
    pub async fn start_temporal(&mut self) {
        let server = DevServer::start(self.temporal_db.as_deref(), &self.temporal_address, None)
            .await
            .expect("temporal dev server starts again");
        self.temporal = Some(server);
    }

    /// Both roles, as this test configured them.
    pub fn roles(&self) -> Roles {
        Roles {
            gateway: Some(self.gateway.clone()),
            worker: Some(self.worker.clone()),
        }
    }

    pub async fn stop(mut self) {
        if let Some(app) = self.app.take() {
            app.stop().await.expect("the app stops cleanly");
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// This test's address for `name` (unique across concurrently running tests).
    pub fn email(&self, name: &str) -> String {
        format!("{name}@{}", self.mail_domain)
    }

    /// Creates the user `name` and returns its e-mail.
    pub async fn add_user(&self, name: &str, admin: bool) -> String {
        let email = self.email(name);
        users::add_user(&self.backends.db, &email, PASSWORD, admin)
            .await
            .expect("user is created");
        email
    }

    pub async fn login_response(&self, email: &str, password: &str) -> Response {
        self.http
            .post(self.url("/login"))
            .basic_auth(email, Some(password))
            .send()
            .await
            .unwrap()
    }

    /// Logs in and returns the token pair.
    pub async fn login(&self, email: &str) -> Value {
        let response = self.login_response(email, PASSWORD).await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    /// A new user, logged in; returns its access token.
    pub async fn user_token(&self, name: &str) -> String {
        let email = self.add_user(name, false).await;
        self.access_token(&email).await
    }

    /// A new admin, logged in; returns its access token.
    pub async fn admin_token(&self, name: &str) -> String {
        let email = self.add_user(name, true).await;
        self.access_token(&email).await
    }

    /// Logs `email` in and returns the access token.
    pub async fn access_token(&self, email: &str) -> String {
        self.login(email).await["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The generated client, signed in with `token`.
    pub fn client(&self, token: &str) -> audiomill_client::Client {
        audiomill_client::connect(&self.base, token).expect("a client for the test gateway")
    }

    /// The gateway's `/metrics` page (open: the tests set no `METRICS_TOKEN` unless they say).
    pub async fn metrics_page(&self) -> String {
        let page = self.http.get(self.url("/metrics")).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        page.text().await.unwrap()
    }

    /// A sample's value on the gateway's `/metrics` page now (0 when absent).
    pub async fn metric(&self, name: &str) -> f64 {
        metric(&self.metrics_page().await, name)
    }

    pub async fn upload_bytes(&self, token: &str, filename: &str, bytes: Vec<u8>) -> Response {
        let form = multipart::Form::new().part(
            "file",
            multipart::Part::bytes(bytes).file_name(filename.to_owned()),
        );
        self.http
            .post(self.url("/upload"))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await
            .unwrap()
    }

    pub async fn upload_file(&self, token: &str, path: &Path) -> Response {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        self.upload_bytes(token, &name, std::fs::read(path).unwrap())
            .await
    }

    /// Uploads and returns the job id, asserting 202.
    pub async fn start_job(&self, token: &str, path: &Path) -> String {
        let response = self.upload_file(token, path).await;
        assert_eq!(
            response.status(),
            StatusCode::ACCEPTED,
            "{}",
            response.text().await.unwrap()
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], "queued");
        body["job_id"].as_str().unwrap().to_owned()
    }

    pub async fn status(&self, token: &str, job_id: &str) -> (StatusCode, Value) {
        let response = self
            .send_as(token, Method::GET, &format!("/status/{job_id}"))
            .await;
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Moves the expiry of the resumable upload `id` to `expires_at` (Unix ms), behind the
    /// gateway's back: an upload that expired and is not yet cleaned.
    pub async fn set_resumable_expiry(&self, id: &str, expires_at: i64) {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let mut connection = sqlx::AnyConnection::connect(self.config.database_url.expose())
            .await
            .expect("the test's own database connection");
        let done = sqlx::query("UPDATE resumable_uploads SET expires_at = ? WHERE id = ?")
            .bind(expires_at)
            .bind(id)
            .execute(&mut connection)
            .await
            .expect("the expiry moves");
        assert_eq!(done.rows_affected(), 1, "upload {id}");
        connection.close().await.ok();
    }

    /// Runs the retention cleanup (`CleanExpired`) once, judged as of `as_of` (Unix ms): the
    /// clock moved, as far as the cleanup can tell. Its report.
    pub async fn clean_expired(&self, as_of: i64) -> audiomill_domain::contract::CleanupReport {
        use audiomill_domain::contract::{CleanExpiredInput, TASK_QUEUE};
        use temporalio_client::{WorkflowGetResultOptions, WorkflowStartOptions};
        let client = self.temporal().await;
        let id = format!("cleanup-test-{}", uuid::Uuid::now_v7());
        let handle = client
            .start_workflow(
                audiomill_workflows::CleanExpired::run,
                CleanExpiredInput { as_of: Some(as_of) },
                WorkflowStartOptions::new(TASK_QUEUE, id).build(),
            )
            .await
            .expect("the cleanup starts");
        tokio::time::timeout(
            Duration::from_secs(60),
            handle.get_result(WorkflowGetResultOptions::default()),
        )
        .await
        .expect("the cleanup ends within a minute")
        .expect("the cleanup succeeds")
    }

    /// A client of this app's Temporal server.
    pub async fn temporal(&self) -> temporalio_client::Client {
        audiomill::temporal::connect(
            &self.temporal_address,
            "default",
            "audiomill-tests",
            Duration::from_secs(10),
        )
        .await
        .expect("Temporal answers")
    }

    /// The job's workflow as Temporal tells it: whether it has closed, and the attempt number
    /// of each pending step, by activity name.
    pub async fn workflow(&self, job_id: &str) -> (bool, Vec<(String, i32)>) {
        use temporalio_client::WorkflowDescribeOptions;
        use temporalio_common::protos::temporal::api::enums::v1::WorkflowExecutionStatus;
        let client = self.temporal().await;
        let described = client
            .get_workflow_handle::<audiomill_workflows::ConvertVideo>(job_id.to_owned())
            .describe(WorkflowDescribeOptions::default())
            .await
            .expect("the workflow is described")
            .into_raw();
        let status = described.workflow_execution_info.unwrap_or_default().status;
        let pending = described
            .pending_activities
            .iter()
            .map(|a| {
                let name = a.activity_type.as_ref().map(|t| t.name.clone());
                (name.unwrap_or_default(), a.attempt)
            })
            .collect();
        (status != WorkflowExecutionStatus::Running as i32, pending)
    }

    /// The job's workflow input as the Web UI shows it: the first event's payload, as JSON.
    pub async fn workflow_input(&self, job_id: &str) -> Value {
        use futures::StreamExt;
        use temporalio_client::WorkflowFetchHistoryOptions;
        use temporalio_common::protos::temporal::api::history::v1::history_event::Attributes;
        let client = self.temporal().await;
        let mut history = client
            .get_workflow_handle::<audiomill_workflows::ConvertVideo>(job_id.to_owned())
            .fetch_history(WorkflowFetchHistoryOptions::default());
        let first = history
            .next()
            .await
            .expect("a first event")
            .expect("history");
        let Some(Attributes::WorkflowExecutionStartedEventAttributes(started)) = first.attributes
        else {
            panic!("the first event is not the start: {first:?}");
        };
        let payload = &started.input.expect("an input").payloads[0];
        serde_json::from_slice(&payload.data).expect("a JSON input")
    }

    /// The activities the job's workflow scheduled, in order, by name (each once however often
    /// it was tried).
    pub async fn activities_run(&self, job_id: &str) -> Vec<String> {
        use temporalio_common::protos::temporal::api::history::v1::history_event::Attributes;
        self.history(job_id, |attributes| match attributes {
            Attributes::ActivityTaskScheduledEventAttributes(scheduled) => {
                scheduled.activity_type.map(|t| t.name)
            }
            _ => None,
        })
        .await
    }

    /// The activity ids of the job's `step` activities, in the order they were scheduled.
    pub async fn activity_ids(&self, job_id: &str, step: &str) -> Vec<String> {
        use temporalio_common::protos::temporal::api::history::v1::history_event::Attributes;
        self.history(job_id, |attributes| match attributes {
            Attributes::ActivityTaskScheduledEventAttributes(scheduled)
                if scheduled
                    .activity_type
                    .as_ref()
                    .is_some_and(|t| t.name == step) =>
            {
                Some(scheduled.activity_id)
            }
            _ => None,
        })
        .await
    }

    /// The workflow ids of the child workflows the job's workflow started, in order.
    pub async fn children_started(&self, job_id: &str) -> Vec<String> {
        use temporalio_common::protos::temporal::api::history::v1::history_event::Attributes;
        self.history(job_id, |attributes| match attributes {
            Attributes::StartChildWorkflowExecutionInitiatedEventAttributes(started) => {
                Some(started.workflow_id)
            }
            _ => None,
        })
        .await
    }

    /// What `pick` takes from each event of the job's workflow history, in order.
    async fn history<T>(
        &self,
        job_id: &str,
        pick: impl Fn(
            temporalio_common::protos::temporal::api::history::v1::history_event::Attributes,
        ) -> Option<T>,
    ) -> Vec<T> {
        use futures::StreamExt;
        use temporalio_client::WorkflowFetchHistoryOptions;
        let client = self.temporal().await;
        let history = client
            .get_workflow_handle::<audiomill_workflows::ConvertVideo>(job_id.to_owned())
            .fetch_history(WorkflowFetchHistoryOptions::default());
        history
            .filter_map(|event| {
                let picked = event
                    .ok()
                    .and_then(|event| event.attributes)
                    .and_then(&pick);
                async move { picked }
            })
            .collect()
            .await
    }

    /// Waits (up to two minutes) until the job's workflow has closed: after that, none of its
    /// steps runs again.
    pub async fn wait_for_workflow_closed(&self, job_id: &str) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !self.workflow(job_id).await.0 {
            assert!(Instant::now() < deadline, "job {job_id} never closed");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits (up to two minutes) until the job's `step` has failed at least once and is being
    /// retried.
    pub async fn wait_for_retry_of(&self, job_id: &str, step: &str) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (_, pending) = self.workflow(job_id).await;
            if pending
                .iter()
                .any(|(name, attempt)| name == step && *attempt > 1)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{step} of {job_id} was never retried: {pending:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Polls `/status` until the job reaches a final state (and, for `completed`, until the
    /// workflow has also finished its notification step), returning every status seen.
    pub async fn wait_for_job(&self, token: &str, job_id: &str) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = Vec::new();
        loop {
            let (code, body) = self.status(token, job_id).await;
            assert_eq!(code, StatusCode::OK, "{body}");
            seen.push(body.clone());
            let status = body["status"].as_str().unwrap_or_default();
            if matches!(status, "failed" | "cancelled")
                || (status == "completed" && self.mail_count().await > 0)
            {
                return seen;
            }
            assert!(
                Instant::now() < deadline,
                "job {job_id} did not finish: {body}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `POST /upload` of `form` as the holder of `token`, with an `Idempotency-Key` if given:
    /// the status and the JSON answer.
    pub async fn post_upload(
        &self,
        token: &str,
        form: multipart::Form,
        key: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .post(self.url("/upload"))
            .bearer_auth(token)
            .multipart(form);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap())
    }

    /// `GET /download/{job_id}` as the holder of `token`.
    pub async fn download(&self, token: &str, job_id: &str) -> Response {
        self.send_as(token, Method::GET, &format!("/download/{job_id}"))
            .await
    }

    /// `DELETE /jobs/{job_id}` as the holder of `token`.
    pub async fn delete_job(&self, token: &str, job_id: &str) -> Response {
        self.send_as(token, Method::DELETE, &format!("/jobs/{job_id}"))
            .await
    }

    /// A body-less request to `path` as the holder of `token`.
    /// A GET of `path` as the holder of `token`: its status and JSON body (null if none).
    pub async fn get_json(&self, token: &str, path: &str) -> (StatusCode, Value) {
        let response = self.send_as(token, Method::GET, path).await;
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn send_as(&self, token: &str, method: Method, path: &str) -> Response {
        self.http
            .request(method, self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// Waits until the job's transcode is under way (it has reported progress).
    pub async fn wait_for_transcode(&self, token: &str, job_id: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (_, status) = self.status(token, job_id).await;
            if status["step"] == "transcode" && status["progress"].as_u64().unwrap_or(0) > 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the transcode never started: {status}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn mail_dir(&self) -> PathBuf {
        self.data.path().join("mail")
    }

    /// The messages sent to this test's users: `To:` and `Subject:` lines, then the text.
    pub async fn mails(&self) -> Vec<String> {
        let Some(maildev) = &self.maildev else {
            let Ok(entries) = std::fs::read_dir(self.mail_dir()) else {
                return Vec::new();
            };
            return entries
                .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
                .collect();
        };
        let url = format!("{maildev}/api/email");
        let all: Vec<Value> = self
            .http
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let suffix = format!("@{}", self.mail_domain);
        all.iter()
            .filter_map(|mail| {
                let to: Vec<&str> = mail["to"]
                    .as_array()?
                    .iter()
                    .filter_map(|t| t["address"].as_str())
                    .collect();
                let ours = to.iter().any(|address| address.ends_with(&suffix));
                ours.then(|| {
                    let subject = mail["subject"].as_str().unwrap_or_default();
                    let text = mail["text"].as_str().unwrap_or_default();
                    format!("To: {}\nSubject: {subject}\n\n{text}", to.join(", "))
                })
            })
            .collect()
    }

    /// The messages sent to this test's users, as they were sent (raw MIME): read back from the
    /// `.eml` files, or from the SMTP sink.
    pub async fn raw_mails(&self) -> Vec<Vec<u8>> {
        let Some(maildev) = &self.maildev else {
            let Ok(entries) = std::fs::read_dir(self.mail_dir()) else {
                return Vec::new();
            };
            return entries
                .filter_map(|e| std::fs::read(e.ok()?.path()).ok())
                .collect();
        };
        let all: Vec<Value> = json_of(self.http.get(format!("{maildev}/api/email")))
            .await
            .as_array()
            .cloned()
            .unwrap_or_default();
        let suffix = format!("@{}", self.mail_domain);
        let mut raw = Vec::new();
        for mail in all {
            let ours = mail["to"].as_array().into_iter().flatten().any(|to| {
                to["address"]
                    .as_str()
                    .is_some_and(|address| address.ends_with(&suffix))
            });
            if ours {
                let id = mail["id"].as_str().unwrap_or_default();
                let source = self
                    .http
                    .get(format!("{maildev}/api/email/{id}/source"))
                    .send();
                raw.push(source.await.unwrap().bytes().await.unwrap().to_vec());
            }
        }
        raw
    }

    /// Waits (up to a minute) until the gateway at `base` says it is ready; `process` is the
    /// one serving it, whose log tells why when it never does.
    pub async fn wait_until_ready(&self, process: &Process) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self
            .http
            .get(self.url("/health/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            assert!(
                Instant::now() < deadline,
                "the gateway did not start: {}",
                process.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The signed download link in the job's e-mail, from its text part as sent.
    pub async fn emailed_link(&self, job_id: &str) -> String {
        let path = format!("/download/{job_id}?signature=");
        match self.mailed_links(&path).await.pop() {
            Some(link) => link,
            None => panic!("no link to {job_id} in {:?}", self.mails().await),
        }
    }

    /// The links containing `part` mailed so far, waiting (up to a minute) until there are
    /// `count`.
    pub async fn mailed_links_awaited(&self, part: &str, count: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let links = self.mailed_links(part).await;
            if links.len() >= count {
                return links;
            }
            assert!(Instant::now() < deadline, "{:?}", self.mails().await);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Every link containing `part` in the text of the mails sent to this test's users.
    pub async fn mailed_links(&self, part: &str) -> Vec<String> {
        self.raw_mails()
            .await
            .iter()
            // A message still being written has no parts yet: it is read on a later look.
            .filter_map(|raw| {
                let mail = mailparse::parse_mail(raw).ok()?;
                mail.subparts.first()?.get_body().ok()
            })
            .flat_map(|text| {
                text.lines()
                    .map(str::trim)
                    .filter(|line| line.starts_with("http") && line.contains(part))
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// A job's MP3 as the bucket (or directory) holds it, read with the test's own client.
    pub async fn mp3_in_bucket(&self, job_id: &str) -> Vec<u8> {
        use futures::TryStreamExt;
        let key = audiomill_domain::ObjectKey::mp3(audiomill_domain::JobId::parse(job_id).unwrap());
        let objects = &self.backends.objects;
        let size = objects
            .size(&key)
            .await
            .unwrap()
            .expect("the MP3 is stored");
        let chunks: Vec<Vec<u8>> = objects
            .read_range(&key, 0..size)
            .await
            .unwrap()
            .map_ok(|chunk| chunk.to_vec())
            .try_collect()
            .await
            .unwrap();
        chunks.concat()
    }

    pub async fn mail_count(&self) -> usize {
        self.mails().await.len()
    }

    /// Every stored object key, ignoring the in-progress area of the file store.
    pub fn objects(&self) -> Vec<String> {
        // s3s-fs keeps a bucket's objects as files under a folder named after it.
        let root = match &self.bucket {
            Some(bucket) => PathBuf::from(required("TEST_S3_ROOT")).join(bucket),
            None => self.data.path().join("objects"),
        };
        objects_in(&root)
    }
}

/// What is left inside the workers' own directories under `work_dir` (see
/// [`TestApp::scratch_files`]).
pub fn scratch_in(work_dir: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            out.push(path.clone());
            if path.is_dir() {
                walk(&path, out);
            }
        }
    }
    let mut left = Vec::new();
    for entry in std::fs::read_dir(work_dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        match (name.starts_with("worker-"), path.is_dir()) {
            (true, true) => walk(&path, &mut left),
            (true, false) if name.ends_with(".lock") => {}
            _ => left.push(path),
        }
    }
    left
}

/// Waits (a minute at most) until `check` holds.
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check() {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A stand-in for the converter's child process: the shell script `body` (after its `#!`
/// line) as the executable `dir/converter.sh`.
pub fn converter_script(dir: &Path, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let script = dir.join("converter.sh");
    std::fs::write(&script, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

/// An upload form: `fields` first, then each of `videos` as a `file` part.
pub fn upload_form(videos: &[&Path], fields: &[(&str, &str)]) -> multipart::Form {
    let form = fields.iter().fold(multipart::Form::new(), |form, (k, v)| {
        form.text(k.to_string(), v.to_string())
    });
    videos.iter().fold(form, |form, path| {
        form.part(
            "file",
            multipart::Part::bytes(std::fs::read(path).unwrap())
                .file_name(path.file_name().unwrap().to_string_lossy().into_owned()),
        )
    })
}

/// The object keys under `root`, a file store's folder or an s3s-fs bucket's, ignoring the
/// in-progress area of the file store.
pub fn objects_in(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.push(
                    path.strip_prefix(root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.retain(|key| !key.starts_with(".partial/"));
    out.sort();
    out
}

/// One `audiomill` process with its own log file.
pub struct Process {
    pub child: Child,
    log: PathBuf,
}

impl Process {
    pub fn start(
        vars: &HashMap<String, String>,
        extra: &[(&str, String)],
        args: &[&str],
        log: &Path,
    ) -> Self {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_audiomill"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info,temporalio_sdk_core=warn")
            .env("LOG_FORMAT", "json")
            .envs(vars)
            .envs(extra.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("audiomill starts");
        Self {
            child,
            log: log.to_owned(),
        }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill(); // SIGKILL: no chance to clean up
        let _ = self.child.wait();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether this process has accepted the TCP connection whose client end is on
    /// `client_port` (the kernel completes a handshake before the server accepts it; this asks
    /// whether the server holds the socket).
    pub fn has_accepted(&self, client_port: u16) -> bool {
        let tcp = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
        let port = |address: &str| {
            address
                .rsplit(':')
                .next()
                .and_then(|hex| u16::from_str_radix(hex, 16).ok())
        };
        let inodes: Vec<String> = tcp
            .lines()
            .skip(1)
            .map(|line| line.split_whitespace().collect::<Vec<_>>())
            .filter(|fields| fields.len() > 9 && port(fields[2]) == Some(client_port))
            .map(|fields| format!("socket:[{}]", fields[9]))
            .collect();
        let fds = std::fs::read_dir(format!("/proc/{}/fd", self.child.id()));
        fds.into_iter().flatten().flatten().any(|fd| {
            std::fs::read_link(fd.path())
                .is_ok_and(|target| inodes.iter().any(|i| target.to_string_lossy() == *i))
        })
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn run(vars: &HashMap<String, String>, args: &[&str]) {
    let output = Command::new(env!("CARGO_BIN_EXE_audiomill"))
        .args(args)
        .envs(vars)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "audiomill {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A process's memory and CPU as the kernel counts them, for limits that must hold.
pub struct Usage {
    pid: u32,
}

impl Usage {
    pub fn of(process: &Process) -> Self {
        Self {
            pid: process.child.id(),
        }
    }

    fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc/{}/status", self.pid))
    }

    /// Resets the peak resident set to the current one (`VmHWM` starts over).
    pub fn reset_peak(&self) {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid), "5").unwrap();
    }

    /// Peak resident set since the last reset, in MiB.
    pub fn peak_mib(&self) -> f64 {
        self.status_kib("VmHWM:") as f64 / 1024.0
    }

    pub fn resident_mib(&self) -> f64 {
        self.status_kib("VmRSS:") as f64 / 1024.0
    }

    /// User and system CPU time so far, in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap();
        // The fields after the command name, which is in parentheses and may hold spaces.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        ticks as f64 / 100.0
    }
}

async fn create_database(server: &str, name: &str) {
    use sqlx::Connection;
    let mut connection = sqlx::MySqlConnection::connect(server)
        .await
        .expect("the test MariaDB answers");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE `{name}`")))
        .execute(&mut connection)
        .await
        .expect("database is created");
    connection.close().await.ok();
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Asserts the contract's error shape and returns the error code.
pub async fn error_code(response: Response) -> String {
    let body: Value = response.json().await.expect("error bodies are JSON");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "no message in {body}"
    );
    body["error"].as_str().expect("error code").to_owned()
}

/// Any other program the tests run (a Prometheus, ...), with its own log file; killed when
/// dropped.
pub struct Spawned(Child);

impl Spawned {
    pub fn start(program: &str, args: &[&str], log: &Path) -> Self {
        let file = std::fs::File::create(log).unwrap();
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{program} starts ({e}): run the suite through `make test`")
            });
        Self(child)
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sends `request` and reads its answer as JSON.
pub async fn json_of(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

/// A sample's value on a Prometheus page (0 when absent).
pub fn metric(page: &str, name: &str) -> f64 {
    page.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}
