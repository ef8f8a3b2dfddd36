//! The op model (crate `schedbox-ops`, shared with the guest agent) and its
//! conversion from the WIT types, done here and nowhere else.

mod from_wit;

pub use schedbox_ops::*;
