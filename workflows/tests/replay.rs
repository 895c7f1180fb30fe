//! Recorded runs of every workflow replay through the workflows as they are now; no server is
//! needed, only the recorded histories.
//!
//! A change to a workflow that a run already under way would replay differently (a step added,
//! moved or dropped) must go behind `ctx.patched(...)`; otherwise Temporal fails that run with
//! a nondeterminism error when its worker restarts. `tests/histories/` holds one folder per set
//! of live patches (`unpatched`, `fewer-round-trips`, ...), each with runs of every kind
//! (completed, failed, cancelled, a long source in parts, webhooks told, the scheduled
//! cleanup), recorded by `make histories` and never overwritten: every folder replays here, so
//! a run started under any earlier set still finishes after an upgrade. A workflow added later
//! (`SendAccountMail`, `WatchFolder`) has its run added to the set it began under, and every run a folder
//! holds replays, the required kinds and the later ones alike.

use audiomill_workflows::{
    CleanExpired, ConvertVideo, DeliverWebhooks, LIVE_PATCHES, SendAccountMail, WatchFolder,
    patch_set,
};
use std::path::{Path, PathBuf};
use temporalio_client::WorkflowHistory;
use temporalio_sdk::workflow_replayer::{WorkflowReplayer, WorkflowReplayerOptions};

/// The kinds of runs each recording holds.
const KINDS: [&str; 7] = [
    "completed",
    "failed",
    "cancelled",
    "in-parts",
    "webhooks-completed",
    "webhooks-delivery",
    "cleanup",
];

fn histories() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/histories")
}

/// The recorded sets, by name: the folders of `tests/histories/`.
fn recorded_sets() -> Vec<String> {
    let mut sets: Vec<String> = std::fs::read_dir(histories())
        .expect("tests/histories/ is there")
        .map(|entry| entry.expect("a readable folder"))
        .filter(|entry| entry.path().is_dir())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    sets.sort();
    sets
}

/// The runs set `set` holds: every one of [`KINDS`] (a missing one fails), then those of
/// workflows added since, by name.
fn kinds_in(set: &str) -> Vec<String> {
    let mut later: Vec<String> = std::fs::read_dir(histories().join(set))
        .expect("a readable set")
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".json").map(str::to_owned)
        })
        .filter(|kind| !KINDS.contains(&kind.as_str()))
        .collect();
    later.sort();
    KINDS
        .iter()
        .map(|kind| kind.to_string())
        .chain(later)
        .collect()
}

fn replayer() -> WorkflowReplayer {
    let options = WorkflowReplayerOptions::new()
        .register_workflow::<ConvertVideo>()
        .and_then(|options| options.register_workflow::<DeliverWebhooks>())
        .and_then(|options| options.register_workflow::<CleanExpired>())
        .and_then(|options| options.register_workflow::<SendAccountMail>())
        .and_then(|options| options.register_workflow::<WatchFolder>())
        .expect("the workflows register")
        .build();
    WorkflowReplayer::new(options).expect("a replayer")
}

/// Replays `json` (a history as `WorkflowHistory::to_json` writes it); why not, if it fails.
async fn replay(replayer: &WorkflowReplayer, json: &[u8]) -> Result<(), String> {
    let history = WorkflowHistory::from_json(json).map_err(|error| error.to_string())?;
    replayer
        .replay_workflow(history)
        .await
        .map_err(|error| error.to_string())
}

#[tokio::test]
async fn every_recorded_set_replays_through_the_workflows_as_they_are() {
    let sets = recorded_sets();
    assert!(
        !sets.is_empty(),
        "no recorded histories: run `make histories`"
    );
    // The replayer's worker is not `Send`: it runs on this thread.
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let replayer = replayer();
            for set in &sets {
                for kind in kinds_in(set) {
                    let path = histories().join(set).join(format!("{kind}.json"));
                    let json = std::fs::read(&path)
                        .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
                    if let Err(why) = replay(&replayer, &json).await {
                        panic!("the {kind} run recorded under `{set}` does not replay: {why}");
                    }
                }
            }
        })
        .await;
}

#[test]
fn each_live_patch_has_runs_recorded_on_both_of_its_branches() {
    let sets = recorded_sets();
    let carries = |set: &str, patch: &str| set.split('+').any(|p| p == patch);
    for patch in LIVE_PATCHES {
        assert!(
            sets.iter().any(|set| !carries(set, patch)),
            "no runs recorded before `{patch}` (its old branch) in {sets:?}"
        );
        assert!(
            sets.iter().any(|set| carries(set, patch)),
            "no runs recorded with `{patch}` (its new branch) in {sets:?}: run `make histories`"
        );
    }
    assert!(
        sets.contains(&patch_set()),
        "no runs recorded under today's patches (`{}`): run `make histories`",
        patch_set()
    );
}
