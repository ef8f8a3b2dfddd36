//! SIGINT, SIGTERM and SIGHUP end `schedbox watch` cleanly: the handler only records
//! the signal ([`schedbox::interrupt`]); the loop notices it (between ops, in holds,
//! while idle), abandons the run and powers the guest off, so no VM outlives the watcher.

pub use schedbox::interrupt::{install, name, received};
