//! BFD control packets (RFC 5880 section 4.1), without authentication.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Vers |  Diag   |Sta|P|F|C|A|D|M|  Detect Mult  |    Length     |
//! |                       My Discriminator                        |
//! |                      Your Discriminator                       |
//! |                    Desired Min TX Interval                    |
//! |                   Required Min RX Interval                    |
//! |                 Required Min Echo RX Interval                 |
//! ```
//!
//! [`Packet::decode`] applies the reception checks of section 6.8.6 that need nothing but
//! the packet; the checks against a session (Your Discriminator, the A bit when
//! authentication is configured) are the session's.

/// The UDP port of single-hop control packets (RFC 5881).
pub const PORT_SINGLE_HOP: u16 = 3784;
/// The UDP port of multihop control packets (RFC 5883).
pub const PORT_MULTIHOP: u16 = 4784;
/// The source ports a session may use (RFC 5881 section 4).
pub const SOURCE_PORTS: std::ops::RangeInclusive<u16> = 49152..=65535;
/// The protocol version.
pub const VERSION: u8 = 1;
/// Length of a control packet without authentication.
pub const LEN: usize = 24;

/// Whether a packet received with IP TTL / hop limit `ttl` may be accepted: exactly 255 on
/// a single-hop session (RFC 5881 section 5: proof that it was not routed), at least
/// `256 - hops` on a multihop session of at most `hops` hops (RFC 5883 leaves the check to
/// configuration; vipd uses the neighbor's `multihop` setting).
pub fn ttl_ok(multihop: Option<u8>, ttl: u8) -> bool {
    match multihop {
        None => ttl == 255,
        Some(hops) => u16::from(ttl) + u16::from(hops.max(1)) >= 256,
    }
}

/// Session states (section 4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum State {
    /// 0: held down administratively.
    AdminDown,
    /// 1.
    Down,
    /// 2.
    Init,
    /// 3.
    Up,
}

impl State {
    fn from_bits(b: u8) -> State {
        match b & 3 {
            0 => State::AdminDown,
            1 => State::Down,
            2 => State::Init,
            _ => State::Up,
        }
    }

    fn bits(self) -> u8 {
        match self {
            State::AdminDown => 0,
            State::Down => 1,
            State::Init => 2,
            State::Up => 3,
        }
    }

    /// The name BIRD and FRR print.
    pub fn name(self) -> &'static str {
        match self {
            State::AdminDown => "AdminDown",
            State::Down => "Down",
            State::Init => "Init",
            State::Up => "Up",
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Diagnostic codes (section 4.1): why the sender's session last left Up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Diag {
    /// 0.
    None,
    /// 1: no packet within the detection time.
    ControlDetectionTimeExpired,
    /// 2.
    EchoFunctionFailed,
    /// 3: the neighbor said Down (or AdminDown).
    NeighborSignaledSessionDown,
    /// 4.
    ForwardingPlaneReset,
    /// 5.
    PathDown,
    /// 6.
    ConcatenatedPathDown,
    /// 7.
    AdministrativelyDown,
    /// 8.
    ReverseConcatenatedPathDown,
    /// 9..=31: reserved.
    Other(u8),
}

impl Diag {
    /// From the 5-bit field.
    pub fn from_code(c: u8) -> Diag {
        match c & 0x1f {
            0 => Diag::None,
            1 => Diag::ControlDetectionTimeExpired,
            2 => Diag::EchoFunctionFailed,
            3 => Diag::NeighborSignaledSessionDown,
            4 => Diag::ForwardingPlaneReset,
            5 => Diag::PathDown,
            6 => Diag::ConcatenatedPathDown,
            7 => Diag::AdministrativelyDown,
            8 => Diag::ReverseConcatenatedPathDown,
            other => Diag::Other(other),
        }
    }

    /// The 5-bit field.
    pub fn code(self) -> u8 {
        match self {
            Diag::None => 0,
            Diag::ControlDetectionTimeExpired => 1,
            Diag::EchoFunctionFailed => 2,
            Diag::NeighborSignaledSessionDown => 3,
            Diag::ForwardingPlaneReset => 4,
            Diag::PathDown => 5,
            Diag::ConcatenatedPathDown => 6,
            Diag::AdministrativelyDown => 7,
            Diag::ReverseConcatenatedPathDown => 8,
            Diag::Other(c) => c & 0x1f,
        }
    }
}

impl std::fmt::Display for Diag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Diag::None => f.write_str("none"),
            Diag::ControlDetectionTimeExpired => f.write_str("control detection time expired"),
            Diag::EchoFunctionFailed => f.write_str("echo function failed"),
            Diag::NeighborSignaledSessionDown => f.write_str("neighbor signaled session down"),
            Diag::ForwardingPlaneReset => f.write_str("forwarding plane reset"),
            Diag::PathDown => f.write_str("path down"),
            Diag::ConcatenatedPathDown => f.write_str("concatenated path down"),
            Diag::AdministrativelyDown => f.write_str("administratively down"),
            Diag::ReverseConcatenatedPathDown => f.write_str("reverse concatenated path down"),
            Diag::Other(c) => write!(f, "diagnostic {c}"),
        }
    }
}

/// A control packet. Intervals are in microseconds, as on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet {
    /// Why the sender's session last left Up.
    pub diag: Diag,
    /// The sender's session state.
    pub state: State,
    /// Poll: the sender changed its parameters and asks for a Final.
    pub poll: bool,
    /// Final: the answer to a Poll.
    pub fin: bool,
    /// Control Plane Independent: the sender's BFD survives its control plane (vipd: no).
    pub cpi: bool,
    /// Authentication present (vipd configures none: such packets are discarded).
    pub auth: bool,
    /// Demand mode (not supported: such packets are discarded by the session).
    pub demand: bool,
    /// Detection time multiplier.
    pub detect_mult: u8,
    /// The sender's discriminator (never 0).
    pub my_disc: u32,
    /// The receiver's discriminator as the sender knows it (0: not yet).
    pub your_disc: u32,
    /// The fastest the sender wants to transmit.
    pub desired_min_tx: u32,
    /// The fastest the sender can receive (0: send me nothing).
    pub required_min_rx: u32,
    /// The fastest the sender can receive Echo packets (0: no Echo).
    pub required_min_echo_rx: u32,
}

/// Why a datagram is not a control packet vipd accepts (RFC 5880 section 6.8.6: discard).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Fewer bytes than a control packet.
    #[error("{0} bytes: shorter than a control packet (24)")]
    TooShort(usize),
    /// Not version 1.
    #[error("version {0}, not 1")]
    Version(u8),
    /// The Length field is below the minimum, or beyond the datagram.
    #[error(
        "length field {field} does not fit a datagram of {datagram} bytes (minimum 24, 26 with authentication)"
    )]
    Length {
        /// The Length field.
        field: u8,
        /// Bytes received.
        datagram: usize,
    },
    /// Detect Mult is zero.
    #[error("detect multiplier 0")]
    ZeroDetectMult,
    /// The Multipoint bit is set.
    #[error("multipoint bit set")]
    Multipoint,
    /// My Discriminator is zero.
    #[error("my discriminator 0")]
    ZeroMyDisc,
    /// Your Discriminator is zero in a state that requires it.
    #[error("your discriminator 0 in state {0}")]
    ZeroYourDisc(State),
}

impl Packet {
    /// Decodes a datagram's payload with the checks of section 6.8.6 that need no session.
    /// Bytes past the Length field are ignored (the RFC allows trailing data).
    pub fn decode(b: &[u8]) -> Result<Packet, DecodeError> {
        if b.len() < LEN {
            return Err(DecodeError::TooShort(b.len()));
        }
        let version = b[0] >> 5;
        if version != VERSION {
            return Err(DecodeError::Version(version));
        }
        let flags = b[1];
        let auth = flags & 0x04 != 0;
        let len = b[3];
        let min = if auth { LEN + 2 } else { LEN };
        if usize::from(len) < min || usize::from(len) > b.len() {
            return Err(DecodeError::Length {
                field: len,
                datagram: b.len(),
            });
        }
        let word = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let p = Packet {
            diag: Diag::from_code(b[0]),
            state: State::from_bits(flags >> 6),
            poll: flags & 0x20 != 0,
            fin: flags & 0x10 != 0,
            cpi: flags & 0x08 != 0,
            auth,
            demand: flags & 0x02 != 0,
            detect_mult: b[2],
            my_disc: word(4),
            your_disc: word(8),
            desired_min_tx: word(12),
            required_min_rx: word(16),
            required_min_echo_rx: word(20),
        };
        if p.detect_mult == 0 {
            return Err(DecodeError::ZeroDetectMult);
        }
        if flags & 0x01 != 0 {
            return Err(DecodeError::Multipoint);
        }
        if p.my_disc == 0 {
            return Err(DecodeError::ZeroMyDisc);
        }
        if p.your_disc == 0 && !matches!(p.state, State::Down | State::AdminDown) {
            return Err(DecodeError::ZeroYourDisc(p.state));
        }
        Ok(p)
    }

    /// The 24 bytes on the wire (no authentication section: the A bit is written as given,
    /// callers leave it false).
    pub fn encode(&self) -> [u8; LEN] {
        let mut b = [0u8; LEN];
        b[0] = (VERSION << 5) | self.diag.code();
        b[1] = (self.state.bits() << 6)
            | (u8::from(self.poll) << 5)
            | (u8::from(self.fin) << 4)
            | (u8::from(self.cpi) << 3)
            | (u8::from(self.auth) << 2)
            | (u8::from(self.demand) << 1);
        b[2] = self.detect_mult;
        b[3] = LEN as u8;
        b[4..8].copy_from_slice(&self.my_disc.to_be_bytes());
        b[8..12].copy_from_slice(&self.your_disc.to_be_bytes());
        b[12..16].copy_from_slice(&self.desired_min_tx.to_be_bytes());
        b[16..20].copy_from_slice(&self.required_min_rx.to_be_bytes());
        b[20..24].copy_from_slice(&self.required_min_echo_rx.to_be_bytes());
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Down packet, built by hand from section 4.1: no diagnostic, multiplier 3, my
    /// discriminator 0x2d6e1f2a, your 0, desired TX 1 s (slow start), required RX 10 ms.
    const BIRD_DOWN: [u8; 24] = [
        0x20, 0x40, 0x03, 0x18, 0x2d, 0x6e, 0x1f, 0x2a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0f, 0x42,
        0x40, 0x00, 0x00, 0x27, 0x10, 0x00, 0x00, 0x00, 0x00,
    ];

    #[test]
    fn decodes_a_down_packet_and_encodes_it_back() {
        let p = Packet::decode(&BIRD_DOWN).expect("valid");
        assert_eq!(p.state, State::Down);
        assert_eq!(p.diag, Diag::None);
        assert_eq!(p.detect_mult, 3);
        assert_eq!(p.my_disc, 0x2d6e_1f2a);
        assert_eq!(p.your_disc, 0);
        assert_eq!(p.desired_min_tx, 1_000_000);
        assert_eq!(p.required_min_rx, 10_000);
        assert!(!p.poll && !p.fin && !p.auth && !p.demand);
        assert_eq!(p.encode(), BIRD_DOWN);
    }

    #[test]
    fn flags_and_diagnostics_round_trip() {
        let p = Packet {
            diag: Diag::ControlDetectionTimeExpired,
            state: State::Up,
            poll: true,
            fin: false,
            cpi: false,
            auth: false,
            demand: false,
            detect_mult: 5,
            my_disc: 7,
            your_disc: 9,
            desired_min_tx: 100_000,
            required_min_rx: 300_000,
            required_min_echo_rx: 0,
        };
        let b = p.encode();
        assert_eq!(b[0], 0x21);
        assert_eq!(b[1], 0xe0);
        assert_eq!(Packet::decode(&b), Ok(p));
        let f = Packet {
            poll: false,
            fin: true,
            ..p
        };
        assert_eq!(f.encode()[1], 0xd0);
    }

    #[test]
    fn refuses_what_section_6_8_6_discards() {
        let ok = BIRD_DOWN;
        let with = |i: usize, v: u8| {
            let mut b = ok;
            b[i] = v;
            Packet::decode(&b)
        };
        assert_eq!(Packet::decode(&ok[..23]), Err(DecodeError::TooShort(23)));
        assert_eq!(with(0, 0x40), Err(DecodeError::Version(2)));
        assert_eq!(
            with(3, 23),
            Err(DecodeError::Length {
                field: 23,
                datagram: 24
            })
        );
        assert_eq!(
            with(3, 40),
            Err(DecodeError::Length {
                field: 40,
                datagram: 24
            })
        );
        // A set: 26 bytes at least.
        assert!(matches!(with(1, 0x44), Err(DecodeError::Length { .. })));
        assert_eq!(with(2, 0), Err(DecodeError::ZeroDetectMult));
        assert_eq!(with(1, 0x41), Err(DecodeError::Multipoint));
        let mut b = ok;
        b[4..8].copy_from_slice(&[0; 4]);
        assert_eq!(Packet::decode(&b), Err(DecodeError::ZeroMyDisc));
        // Up with your discriminator 0.
        assert_eq!(with(1, 0xc0), Err(DecodeError::ZeroYourDisc(State::Up)));
        assert_eq!(with(1, 0x80), Err(DecodeError::ZeroYourDisc(State::Init)));
        // AdminDown with 0 is fine.
        assert!(with(1, 0x00).is_ok());
        // Trailing bytes past Length are ignored.
        let mut long = ok.to_vec();
        long.extend_from_slice(&[0xff; 8]);
        assert!(Packet::decode(&long).is_ok());
    }

    #[test]
    fn ttl_255_on_a_single_hop_session_and_within_the_hops_on_a_multihop_one() {
        assert!(ttl_ok(None, 255));
        assert!(!ttl_ok(None, 254));
        assert!(!ttl_ok(None, 1));
        assert!(ttl_ok(Some(1), 255));
        assert!(!ttl_ok(Some(1), 254));
        assert!(ttl_ok(Some(3), 253));
        assert!(!ttl_ok(Some(3), 252));
        assert!(ttl_ok(Some(255), 1));
        assert!(!ttl_ok(Some(255), 0));
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_what_decodes_encodes_back(b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            if let Ok(p) = Packet::decode(&b) {
                if !p.auth {
                    let e = p.encode();
                    proptest::prop_assert_eq!(Packet::decode(&e), Ok(p));
                }
            }
        }
    }
}
