//! NOTIFICATION messages, with the RFC 9003 shutdown communication and names for logs.

use std::fmt;

/// A NOTIFICATION message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    /// Error code.
    pub code: u8,
    /// Error subcode.
    pub subcode: u8,
    /// Data.
    pub data: Vec<u8>,
}

/// Cease subcodes (RFC 4486).
pub mod cease {
    /// Maximum number of prefixes reached.
    pub const MAX_PREFIXES: u8 = 1;
    /// Administrative shutdown (may carry a shutdown communication).
    pub const ADMIN_SHUTDOWN: u8 = 2;
    /// Peer de-configured.
    pub const PEER_DECONFIGURED: u8 = 3;
    /// Administrative reset (may carry a shutdown communication).
    pub const ADMIN_RESET: u8 = 4;
    /// Connection rejected.
    pub const CONNECTION_REJECTED: u8 = 5;
    /// Other configuration change.
    pub const CONFIG_CHANGE: u8 = 6;
    /// Connection collision resolution.
    pub const COLLISION: u8 = 7;
    /// Out of resources.
    pub const OUT_OF_RESOURCES: u8 = 8;
    /// Hard reset (RFC 8538).
    pub const HARD_RESET: u8 = 9;
    /// BFD down (RFC 9384).
    pub const BFD_DOWN: u8 = 10;
}

impl Notification {
    pub(crate) fn decode(body: &[u8]) -> Option<Notification> {
        let (&code, rest) = body.split_first()?;
        let (&subcode, data) = rest.split_first()?;
        Some(Notification {
            code,
            subcode,
            data: data.to_vec(),
        })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.code);
        out.push(self.subcode);
        out.extend(&self.data);
    }

    /// A Cease / administrative shutdown carrying `reason` (RFC 9003: at most 255 bytes of
    /// UTF-8, truncated on a character boundary).
    pub fn shutdown(reason: &str) -> Notification {
        Self::cease_with_reason(cease::ADMIN_SHUTDOWN, reason)
    }

    /// A Cease with a shutdown communication (`subcode` 2 or 4).
    pub fn cease_with_reason(subcode: u8, reason: &str) -> Notification {
        let mut end = reason.len().min(255);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        let mut data = vec![end as u8];
        data.extend(&reason.as_bytes()[..end]);
        Notification {
            code: 6,
            subcode,
            data,
        }
    }

    /// The shutdown communication, when this is a Cease 2/4 carrying a valid one.
    pub fn shutdown_reason(&self) -> Option<String> {
        if self.code != 6 || !matches!(self.subcode, cease::ADMIN_SHUTDOWN | cease::ADMIN_RESET) {
            return None;
        }
        let (&len, text) = self.data.split_first()?;
        let text = text.get(..usize::from(len))?;
        String::from_utf8(text.to_vec()).ok()
    }
}

impl fmt::Display for Notification {
    /// "Cease / Administrative Shutdown: \"maintenance\"" rather than "6/2".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (code, sub) = names(self.code, self.subcode);
        write!(f, "{code} / {sub} ({}/{})", self.code, self.subcode)?;
        if let Some(r) = self.shutdown_reason() {
            write!(f, ": {r:?}")?;
        }
        Ok(())
    }
}

fn names(code: u8, sub: u8) -> (&'static str, &'static str) {
    match (code, sub) {
        (1, s) => (
            "Message Header Error",
            match s {
                1 => "Connection Not Synchronized",
                2 => "Bad Message Length",
                3 => "Bad Message Type",
                _ => "Unknown",
            },
        ),
        (2, s) => (
            "OPEN Message Error",
            match s {
                1 => "Unsupported Version Number",
                2 => "Bad Peer AS",
                3 => "Bad BGP Identifier",
                4 => "Unsupported Optional Parameter",
                6 => "Unacceptable Hold Time",
                7 => "Unsupported Capability",
                11 => "Role Mismatch",
                _ => "Unknown",
            },
        ),
        (3, s) => (
            "UPDATE Message Error",
            match s {
                1 => "Malformed Attribute List",
                2 => "Unrecognized Well-known Attribute",
                3 => "Missing Well-known Attribute",
                4 => "Attribute Flags Error",
                5 => "Attribute Length Error",
                6 => "Invalid ORIGIN Attribute",
                8 => "Invalid NEXT_HOP Attribute",
                9 => "Optional Attribute Error",
                10 => "Invalid Network Field",
                11 => "Malformed AS_PATH",
                _ => "Unknown",
            },
        ),
        (4, _) => ("Hold Timer Expired", "-"),
        (5, s) => (
            "Finite State Machine Error",
            match s {
                1 => "Unexpected Message in OpenSent",
                2 => "Unexpected Message in OpenConfirm",
                3 => "Unexpected Message in Established",
                _ => "Unspecified",
            },
        ),
        (6, s) => (
            "Cease",
            match s {
                cease::MAX_PREFIXES => "Maximum Number of Prefixes Reached",
                cease::ADMIN_SHUTDOWN => "Administrative Shutdown",
                cease::PEER_DECONFIGURED => "Peer De-configured",
                cease::ADMIN_RESET => "Administrative Reset",
                cease::CONNECTION_REJECTED => "Connection Rejected",
                cease::CONFIG_CHANGE => "Other Configuration Change",
                cease::COLLISION => "Connection Collision Resolution",
                cease::OUT_OF_RESOURCES => "Out of Resources",
                cease::HARD_RESET => "Hard Reset",
                cease::BFD_DOWN => "BFD Down",
                _ => "Unknown",
            },
        ),
        (7, _) => ("ROUTE-REFRESH Message Error", "Invalid Message Length"),
        _ => ("Unknown", "Unknown"),
    }
}
