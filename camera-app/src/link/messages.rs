//! What the link and the frame loop say to each other: one typed channel
//! of commands from the link to the loop, one of events back. Nothing
//! else passes between them but the outbox (records the loop stored, the
//! link sends) and the health figures the loop publishes for the link to
//! read.

use camera_core::config::remote::ConfigResult;
use camera_core::shelf::request::{ShelfReferenceReply, ShelfReferenceRequest};

/// A requested snapshot: the JPEG, or why there is none.
pub type Snapshot = Result<Vec<u8>, String>;

/// What the link asks of the frame loop. Handled between two frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CameraCommand {
    /// A `config/set` payload to decide on, answered by
    /// [`CameraEvent::Configured`] with the same ticket.
    Configure { ticket: u64, payload: Vec<u8> },
    /// An installer asked for a snapshot: answered by
    /// [`CameraEvent::Snapshot`].
    Snapshot,
    /// An installer asked for a new shelf reference: answered by
    /// [`CameraEvent::ShelfReference`]s as the capture goes on.
    ShelfReference(ShelfReferenceRequest),
}

/// What the frame loop tells the link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CameraEvent {
    /// New records wait in the outbox.
    Stored,
    /// The answer to [`CameraCommand::Configure`]; `state` is the version
    /// and document now in force when the configuration was accepted (it
    /// was stored before this was sent).
    Configured {
        ticket: u64,
        result: ConfigResult,
        state: Option<(u64, String)>,
    },
    Snapshot(Snapshot),
    ShelfReference(ShelfReferenceReply),
}
