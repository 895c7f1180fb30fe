//! Every integration test of the service, in one binary: each module is one suite (the gateway's
//! HTTP API, jobs end to end, resumable uploads, processes killed mid-job, ...), and `common`
//! is the harness they share (a real Temporal dev server, gateway and worker per test, on the
//! embedded or the production backends).

mod common;

mod batches;
mod cli;
mod clients;
mod compose;
mod compose_stack;
mod connections;
mod faults;
mod formats;
mod histories;
mod hostile;
mod http_api;
mod identity;
mod imports;
mod integrators;
mod jobs;
mod k8s;
mod lifecycle;
mod links;
mod output;
mod processes;
mod prometheus;
mod resumable;
mod segments;
mod sessions;
mod sign_on;
mod startup;
mod watches;
mod webapp;
mod webhooks;
