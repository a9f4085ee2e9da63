//! The message header, the message enum, and decode errors as NOTIFICATIONs.

use super::notification::Notification;
use super::open::Open;
use super::reader::Reader;
use super::update::{Update, UpdateError};
use super::{Afi, Safi};

/// Length of the header: marker (16), length (2), type (1).
pub const HEADER_LEN: usize = 19;
/// Largest message without the extended message capability.
pub const MAX_LEN: usize = 4096;
/// Largest message with it (RFC 8654).
pub const MAX_LEN_EXTENDED: usize = 65535;

/// What the session negotiated that changes how messages are read and written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Session {
    /// Both sides advertised 4-octet AS numbers: AS_PATH carries 4-octet ASNs.
    pub four_octet_as: bool,
    /// Both sides advertised extended messages.
    pub extended_message: bool,
}

impl Default for Session {
    /// Before OPEN is exchanged: 2-octet AS_PATH, 4096-byte messages.
    fn default() -> Self {
        Self {
            four_octet_as: false,
            extended_message: false,
        }
    }
}

impl Session {
    /// The largest message allowed.
    pub fn max_len(&self) -> usize {
        if self.extended_message {
            MAX_LEN_EXTENDED
        } else {
            MAX_LEN
        }
    }
}

/// Message types (RFC 4271, RFC 2918).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageType {
    /// 1.
    Open,
    /// 2.
    Update,
    /// 3.
    Notification,
    /// 4.
    Keepalive,
    /// 5.
    RouteRefresh,
}

/// ROUTE-REFRESH message subtype (RFC 7313).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteRefreshSubtype {
    /// 0: a plain request.
    Request,
    /// 1: beginning of route refresh.
    Begin,
    /// 2: end of route refresh.
    End,
    /// Reserved values.
    Other(u8),
}

/// A ROUTE-REFRESH message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteRefresh {
    /// AFI.
    pub afi: Afi,
    /// Subtype (the reserved byte of RFC 2918).
    pub subtype: RouteRefreshSubtype,
    /// SAFI.
    pub safi: Safi,
}

/// A BGP message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// OPEN.
    Open(Open),
    /// UPDATE (boxed: far larger than the other messages).
    Update(Box<Update>),
    /// NOTIFICATION.
    Notification(Notification),
    /// KEEPALIVE.
    Keepalive,
    /// ROUTE-REFRESH.
    RouteRefresh(RouteRefresh),
}

/// A message that cannot be accepted, with the NOTIFICATION to send about it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason} (NOTIFICATION {code}/{subcode})")]
pub struct WireError {
    /// NOTIFICATION error code.
    pub code: u8,
    /// Subcode.
    pub subcode: u8,
    /// Data field.
    pub data: Vec<u8>,
    /// What was wrong, for the logs.
    pub reason: String,
}

impl WireError {
    pub(crate) fn new(code: u8, subcode: u8, data: Vec<u8>, reason: impl Into<String>) -> Self {
        Self {
            code,
            subcode,
            data,
            reason: reason.into(),
        }
    }
    /// The NOTIFICATION to send.
    pub fn notification(&self) -> Notification {
        Notification {
            code: self.code,
            subcode: self.subcode,
            data: self.data.clone(),
        }
    }
}

/// Decoding an UPDATE may end in an RFC 7606 outcome rather than a plain error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A well-formed message.
    Message(Message),
    /// An UPDATE whose errors RFC 7606 handles without resetting the session.
    Update(UpdateError),
}

impl Message {
    /// The message type.
    pub fn kind(&self) -> MessageType {
        match self {
            Message::Open(_) => MessageType::Open,
            Message::Update(_) => MessageType::Update,
            Message::Notification(_) => MessageType::Notification,
            Message::Keepalive => MessageType::Keepalive,
            Message::RouteRefresh(_) => MessageType::RouteRefresh,
        }
    }

    /// Length of the message starting `buf`, once its header is complete: `Ok(None)` when
    /// more bytes are needed, an error when the header is invalid (bad marker or length).
    pub fn frame_len(buf: &[u8], s: &Session) -> Result<Option<usize>, WireError> {
        if buf.len() < HEADER_LEN {
            return Ok(None);
        }
        if buf[..16].iter().any(|b| *b != 0xff) {
            return Err(WireError::new(
                1,
                1,
                vec![],
                "connection not synchronized: bad marker",
            ));
        }
        let len = usize::from(u16::from_be_bytes([buf[16], buf[17]]));
        if !(HEADER_LEN..=s.max_len()).contains(&len) {
            return Err(WireError::new(
                1,
                2,
                buf[16..18].to_vec(),
                format!("bad message length {len}"),
            ));
        }
        Ok(Some(len))
    }

    /// Decodes one whole message (header included).
    pub fn decode(buf: &[u8], s: &Session) -> Result<Decoded, WireError> {
        let len = Self::frame_len(buf, s)?
            .ok_or_else(|| WireError::new(1, 2, vec![], "truncated header"))?;
        if len != buf.len() {
            return Err(WireError::new(
                1,
                2,
                buf[16..18].to_vec(),
                format!("length field {len} but {} bytes", buf.len()),
            ));
        }
        let kind = buf[18];
        let body = &buf[HEADER_LEN..];
        let bad_len = || {
            WireError::new(
                1,
                2,
                buf[16..18].to_vec(),
                format!("bad length {len} for message type {kind}"),
            )
        };
        Ok(Decoded::Message(match kind {
            1 => Message::Open(Open::decode(body)?),
            2 => match Update::decode(body, s)? {
                Ok(u) => Message::Update(Box::new(u)),
                Err(e) => return Ok(Decoded::Update(e)),
            },
            3 => Message::Notification(Notification::decode(body).ok_or_else(bad_len)?),
            4 if body.is_empty() => Message::Keepalive,
            4 => return Err(bad_len()),
            5 if body.len() == 4 => {
                let mut r = Reader::new(body);
                let afi = r.u16().ok_or_else(bad_len)?.into();
                let subtype = match r.u8().ok_or_else(bad_len)? {
                    0 => RouteRefreshSubtype::Request,
                    1 => RouteRefreshSubtype::Begin,
                    2 => RouteRefreshSubtype::End,
                    n => RouteRefreshSubtype::Other(n),
                };
                Message::RouteRefresh(RouteRefresh {
                    afi,
                    subtype,
                    safi: r.u8().ok_or_else(bad_len)?.into(),
                })
            }
            // RFC 7313: a ROUTE-REFRESH of the wrong length is answered with code 7.
            5 => {
                return Err(WireError::new(
                    7,
                    1,
                    body.to_vec(),
                    format!("ROUTE-REFRESH of {} bytes", body.len()),
                ));
            }
            t => {
                return Err(WireError::new(
                    1,
                    3,
                    vec![t],
                    format!("bad message type {t}"),
                ));
            }
        }))
    }

    /// Encodes the message. Fails only when it does not fit the session's maximum length
    /// (callers split UPDATEs before that).
    pub fn encode(&self, s: &Session) -> Result<Vec<u8>, WireError> {
        let mut out = vec![0xff; 16];
        out.extend([0, 0]);
        let kind = match self {
            Message::Open(o) => {
                o.encode(&mut out);
                1
            }
            Message::Update(u) => {
                u.encode(&mut out, s);
                2
            }
            Message::Notification(n) => {
                n.encode(&mut out);
                3
            }
            Message::Keepalive => 4,
            Message::RouteRefresh(r) => {
                out.extend(u16::from(r.afi).to_be_bytes());
                out.push(match r.subtype {
                    RouteRefreshSubtype::Request => 0,
                    RouteRefreshSubtype::Begin => 1,
                    RouteRefreshSubtype::End => 2,
                    RouteRefreshSubtype::Other(n) => n,
                });
                out.push(r.safi.into());
                5
            }
        };
        out.insert(18, kind);
        if out.len() > s.max_len() {
            return Err(WireError::new(
                1,
                2,
                vec![],
                format!("message of {} bytes exceeds {}", out.len(), s.max_len()),
            ));
        }
        let len = (out.len() as u16).to_be_bytes();
        out[16..18].copy_from_slice(&len);
        Ok(out)
    }
}
