//! What counting a request costs the gateway (used by `make bench`): the work its metrics
//! middleware does for every answered request (the clock read around it, the route template
//! lookup, and the two series it updates) timed over a million requests in the load run's
//! mix, after the series exist. Prints nanoseconds per request; `make bench` sets that against
//! the gateway's CPU time per request in the load run.
//!
//!   cargo run --example metrics_cost

use audiomill_api::metrics::{self, Routes};
use std::{hint::black_box, time::Instant};

const ROUNDS: u32 = 1_000_000;

fn main() {
    metrics::handle();
    let routes = Routes::from_spec(&audiomill_api::openapi_json());
    let mix = [
        ("GET", "/status/0190c3e2-5a4e-7b7c-9a1d-3f1e2d4c5b6a", 200),
        ("POST", "/validate", 200),
        ("GET", "/status/0190c3e2-5a4e-7b7c-9a1d-3f1e2d4c5b6b", 200),
        ("POST", "/upload", 202),
    ];
    let count = |rounds: u32| {
        for round in 0..rounds {
            let (method, path, status) = mix[round as usize % mix.len()];
            let started = Instant::now();
            let method = black_box(method).to_string();
            let route = routes.template_of(black_box(path));
            metrics::request_answered(&method, route, status, started.elapsed());
        }
    };
    count(ROUNDS / 10);
    let started = Instant::now();
    count(ROUNDS);
    let per_request = started.elapsed().as_nanos() as f64 / f64::from(ROUNDS);
    println!("{per_request:.0}");
}
