//! BGP-4 messages on the wire.
//!
//! [`Message::decode`] takes one whole message (header included) and never panics: every
//! length is checked, and a malformed message yields a [`WireError`] carrying the
//! NOTIFICATION code, subcode and data RFC 4271 prescribes. UPDATE attributes are decoded with
//! RFC 7606's revised error handling ([`update::UpdateError`]): most errors make the UPDATE
//! *treat-as-withdraw* instead of resetting the session.

mod capability;
mod message;
mod notification;
mod open;
mod prefix;
mod reader;
pub mod update;

pub use capability::{Afi, Capability, GrFamily, Safi};
pub use message::{
    Decoded, HEADER_LEN, MAX_LEN, MAX_LEN_EXTENDED, Message, MessageType, RouteRefresh,
    RouteRefreshSubtype, Session, WireError,
};
pub use notification::{Notification, cease};
pub use open::{AS_TRANS, Open};
pub use prefix::Prefix;
pub use update::{Attrs, Origin, Update};

#[cfg(test)]
mod tests;
