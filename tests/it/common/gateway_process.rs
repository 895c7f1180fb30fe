//! A gateway as a process of its own, for what only a whole process shows: its memory, its
//! connections, its log.

use super::*;

/// A gateway process on its own port, with a user to log in as.
pub struct GatewayProcess {
    pub test: TestApp,
    pub process: Process,
    pub address: String,
    pub email: String,
}

impl GatewayProcess {
    pub async fn start(extra: &[(&str, String)]) -> Self {
        let test = TestApp::without_app(&[]).await;
        let logs = test.data.path().join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        run(&test.vars, &["migrate"]);
        let email = test.email("ann");
        run(
            &test.vars,
            &["user", "add", "--email", &email, "--password", PASSWORD],
        );
        let address = format!("127.0.0.1:{}", free_port());
        let mut env: Vec<(&str, String)> = vec![("LISTEN_ADDR", address.clone())];
        env.extend(extra.iter().cloned());
        let process = Process::start(&test.vars, &env, &["gateway"], &logs.join("gateway.log"));
        let gateway = Self {
            test,
            process,
            address,
            email,
        };
        gateway.wait_until_up().await;
        gateway
    }

    pub async fn wait_until_up(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let client = reqwest::Client::new();
        while client
            .get(format!("http://{}/health", self.address))
            .send()
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "the gateway did not start: {}",
                self.process.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn token(&self) -> String {
        let response = reqwest::Client::new()
            .post(format!("http://{}/login", self.address))
            .basic_auth(&self.email, Some(PASSWORD))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body: serde_json::Value = response.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }
}
