//! Every integration suite, as one test binary (the layout of zero-to-production and svix):
//! the library and the AWS SDK are compiled and linked once, and `cargo test --workspace`
//! runs them all. Each suite is a module named after its file, so a test's name starts with
//! its suite: `cargo test -p integration-tests --test it -- api::embedded::`.
//!
//! The fuzzing suite is not here: tests/fuzz.rs is a target of its own (`harness = false`),
//! because it has its own `main`, which prints one line per property and
//! `fuzz: N passed, N failed`.

mod api;
mod contracts;
mod cross_process;
mod edge_input;
mod events;
mod interop;
mod key_rings;
mod keyrings;
mod layout;
mod module_cycles;
mod no_secrets_in_logs;
mod rotation;
mod scheduling;
mod secrets_manager_faults;
mod store_behaviour;
mod strict_proxy;
mod throttle_proxy;

/// The tests whose assertions depend on the machine keeping up take turns through this lock:
/// the cross-process races (two server processes, and moto) and the quota proxy's rate tests
/// (one moto process is easily saturated). When each suite was a binary of its own, the suites
/// ran one after another; in one process they run side by side, so the lock is shared here.
static LOAD_TESTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
