//! Small value types used by the configuration model.
//!
//! Each one parses from the string form an operator writes (`"1s"`, `"75%"`, `"65000:100"`)
//! and serializes back to the same form, so that `vipd` can print the effective config in the
//! syntax it reads.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration written as a human string: `"500ms"`, `"2s"`, `"1m 30s"`.
///
/// Bare integers are refused on purpose: `interval = 5` is ambiguous (seconds? ms?) and the
/// error says how to write it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    /// Build from whole seconds.
    pub const fn from_secs(s: u64) -> Self {
        Self(std::time::Duration::from_secs(s))
    }
    /// Build from milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        Self(std::time::Duration::from_millis(ms))
    }
    /// The std duration.
    pub const fn get(self) -> std::time::Duration {
        self.0
    }
    /// True for a zero duration.
    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }
}

/// The longest duration any key takes. Intervals, timeouts and delays beyond a day are
/// typos; and a duration is added to the clock (a drain's end), which must never overflow.
pub const MAX_DURATION: std::time::Duration = std::time::Duration::from_secs(86_400);

impl FromStr for Duration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let d = humantime::parse_duration(s.trim()).map_err(|e| {
            format!("invalid duration {s:?}: {e} (write e.g. \"500ms\", \"2s\", \"1m\")")
        })?;
        if d > MAX_DURATION {
            return Err(format!(
                "duration {s:?} is longer than a day (write at most \"24h\")"
            ));
        }
        Ok(Duration(d))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string such as \"500ms\", \"2s\" or \"1m\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Duration, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A secret (a TCP MD5 key): compared and used like a string, never shown. `Debug`,
/// `Display` and serialization print `<redacted>`, so a logged or dumped configuration does
/// not leak it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for the one place that needs it (the socket option).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

/// A percentage written as `"10%"` (0 to 100, integral).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Percent(pub u8);

impl Percent {
    /// The value as a fraction in `0.0..=1.0`.
    pub fn fraction(self) -> f64 {
        f64::from(self.0) / 100.0
    }
}

impl FromStr for Percent {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad =
            || format!("invalid percentage {s:?} (write e.g. \"10%\", from \"0%\" to \"100%\")");
        let n = s.trim().strip_suffix('%').ok_or_else(bad)?;
        let v: u8 = n.trim().parse().map_err(|_| bad())?;
        if v > 100 {
            return Err(bad());
        }
        Ok(Percent(v))
    }
}

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", self.0)
    }
}

/// Implements `Deserialize` (from a string, through `FromStr`) and `Serialize` (through
/// `Display`) for the string-typed values of this module.
macro_rules! string_serde {
    ($t:ty, $expecting:literal) => {
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl serde::de::Visitor<'_> for V {
                    type Value = $t;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$t, E> {
                        v.parse().map_err(E::custom)
                    }
                }
                d.deserialize_str(V)
            }
        }
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    };
}

string_serde!(Percent, "a percentage string such as \"10%\"");
string_serde!(
    Community,
    "a community such as \"65000:100\" or \"no-export\""
);
string_serde!(
    LargeCommunity,
    "a large community such as \"4200000001:1:2\""
);
string_serde!(
    ExtCommunity,
    "an extended community such as \"rt:65000:100\" or \"soo:192.0.2.1:7\""
);

/// A BGP standard community (RFC 1997), written `"ASN:VALUE"` or by its well-known name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Community(pub u32);

impl Community {
    /// RFC 8326 GRACEFUL_SHUTDOWN, 65535:0.
    pub const GRACEFUL_SHUTDOWN: Community = Community(0xFFFF_0000);
    /// RFC 1997 NO_EXPORT.
    pub const NO_EXPORT: Community = Community(0xFFFF_FF01);
    /// RFC 1997 NO_ADVERTISE.
    pub const NO_ADVERTISE: Community = Community(0xFFFF_FF02);
    /// RFC 1997 NO_EXPORT_SUBCONFED.
    pub const NO_EXPORT_SUBCONFED: Community = Community(0xFFFF_FF03);
    /// RFC 7999 BLACKHOLE.
    pub const BLACKHOLE: Community = Community(0xFFFF_029A);

    const NAMES: [(&'static str, Community); 5] = [
        ("graceful-shutdown", Self::GRACEFUL_SHUTDOWN),
        ("no-export", Self::NO_EXPORT),
        ("no-advertise", Self::NO_ADVERTISE),
        ("no-export-subconfed", Self::NO_EXPORT_SUBCONFED),
        ("blackhole", Self::BLACKHOLE),
    ];
}

impl FromStr for Community {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Some((_, c)) = Self::NAMES.iter().find(|(n, _)| n.eq_ignore_ascii_case(s)) {
            return Ok(*c);
        }
        let bad = || {
            format!(
                "invalid community {s:?} (write \"ASN:VALUE\" with both parts 0..=65535, or one of \
                 graceful-shutdown, no-export, no-advertise, no-export-subconfed, blackhole)"
            )
        };
        let (a, v) = s.split_once(':').ok_or_else(bad)?;
        let a: u16 = a.parse().map_err(|_| bad())?;
        let v: u16 = v.parse().map_err(|_| bad())?;
        Ok(Community((u32::from(a) << 16) | u32::from(v)))
    }
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.0 >> 16, self.0 & 0xFFFF)
    }
}

/// A BGP large community (RFC 8092), written `"GLOBAL:LOCAL1:LOCAL2"`, each part a u32.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LargeCommunity(pub u32, pub u32, pub u32);

impl FromStr for LargeCommunity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "invalid large community {s:?} (write \"GLOBAL:LOCAL1:LOCAL2\", each 0..=4294967295)"
            )
        };
        let mut it = s.trim().split(':').map(|p| p.parse::<u32>());
        match (it.next(), it.next(), it.next(), it.next()) {
            (Some(Ok(a)), Some(Ok(b)), Some(Ok(c)), None) => Ok(LargeCommunity(a, b, c)),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for LargeCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.0, self.1, self.2)
    }
}

/// A BGP extended community (RFC 4360) of the route target or route origin kind, written
/// `"rt:ADMIN:VALUE"` or `"soo:ADMIN:VALUE"` (also ExaBGP's `target:` and `origin:`), where
/// ADMIN is a 2-octet AS (VALUE up to 4294967295), an IPv4 address or a 4-octet AS (VALUE up
/// to 65535). Held as its 8 wire octets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExtCommunity(pub [u8; 8]);

impl FromStr for ExtCommunity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "invalid extended community {s:?} (write \"rt:ASN:VALUE\", \"rt:IPV4:VALUE\" or \"soo:...\"; \
                 VALUE up to 65535 with an IPv4 address or an AS above 65535)"
            )
        };
        let mut it = s.trim().splitn(3, ':');
        let sub = match it.next().map(str::to_ascii_lowercase).as_deref() {
            Some("rt" | "target") => 0x02,
            Some("soo" | "origin") => 0x03,
            _ => return Err(bad()),
        };
        let (Some(admin), Some(value)) = (it.next(), it.next()) else {
            return Err(bad());
        };
        let value: u32 = value.parse().map_err(|_| bad())?;
        let mut b = [0u8; 8];
        b[1] = sub;
        if let Ok(ip) = admin.parse::<std::net::Ipv4Addr>() {
            let v = u16::try_from(value).map_err(|_| bad())?;
            b[0] = 0x01;
            b[2..6].copy_from_slice(&ip.octets());
            b[6..8].copy_from_slice(&v.to_be_bytes());
        } else {
            let asn: u32 = admin.parse().map_err(|_| bad())?;
            if let Ok(a) = u16::try_from(asn) {
                b[2..4].copy_from_slice(&a.to_be_bytes());
                b[4..8].copy_from_slice(&value.to_be_bytes());
            } else {
                let v = u16::try_from(value).map_err(|_| bad())?;
                b[0] = 0x02;
                b[2..6].copy_from_slice(&asn.to_be_bytes());
                b[6..8].copy_from_slice(&v.to_be_bytes());
            }
        }
        Ok(ExtCommunity(b))
    }
}

impl fmt::Display for ExtCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        let kind = if b[1] == 0x03 { "soo" } else { "rt" };
        let u16_at = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
        let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        match b[0] {
            0x01 => write!(
                f,
                "{kind}:{}:{}",
                std::net::Ipv4Addr::new(b[2], b[3], b[4], b[5]),
                u16_at(6)
            ),
            0x02 => write!(f, "{kind}:{}:{}", u32_at(2), u16_at(6)),
            _ => write!(f, "{kind}:{}:{}", u16_at(2), u32_at(4)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extended_communities_encode_as_rfc_4360() {
        let rt: ExtCommunity = "rt:65000:100".parse().unwrap();
        assert_eq!(rt.0, [0x00, 0x02, 0xFD, 0xE8, 0, 0, 0, 100]);
        let ip: ExtCommunity = "soo:192.0.2.1:7".parse().unwrap();
        assert_eq!(ip.0, [0x01, 0x03, 192, 0, 2, 1, 0, 7]);
        let four: ExtCommunity = "target:4200000001:9".parse().unwrap();
        assert_eq!(four.0, [0x02, 0x02, 0xFA, 0x56, 0xEA, 0x01, 0, 9]);
        for s in ["rt:65000:100", "soo:192.0.2.1:7", "rt:4200000001:9"] {
            assert_eq!(s.parse::<ExtCommunity>().unwrap().to_string(), s);
        }
        for bad in [
            "rt:65000",
            "xx:1:2",
            "rt:192.0.2.1:70000",
            "rt:4200000001:70000",
        ] {
            assert!(bad.parse::<ExtCommunity>().is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_parse_and_print() {
        assert_eq!("1s".parse::<Duration>().unwrap(), Duration::from_secs(1));
        assert_eq!(
            "250ms".parse::<Duration>().unwrap(),
            Duration::from_millis(250)
        );
        assert_eq!(
            "1m 30s".parse::<Duration>().unwrap(),
            Duration::from_secs(90)
        );
        assert_eq!(Duration::from_millis(1500).to_string(), "1s 500ms");
        let e = "5".parse::<Duration>().unwrap_err();
        assert!(e.contains("write e.g."), "{e}");
        assert_eq!(
            "24h".parse::<Duration>().unwrap(),
            Duration::from_secs(86_400)
        );
        let e = "580000000000years".parse::<Duration>().unwrap_err();
        assert!(e.contains("longer than a day"), "{e}");
    }

    #[test]
    fn percent_bounds() {
        assert_eq!("75%".parse::<Percent>().unwrap(), Percent(75));
        assert_eq!(" 0 %".parse::<Percent>().unwrap(), Percent(0));
        assert!("101%".parse::<Percent>().is_err());
        assert!("75".parse::<Percent>().is_err());
        assert!((Percent(50).fraction() - 0.5).abs() < f64::EPSILON);
    }

    #[test]
    fn communities() {
        assert_eq!(
            "65535:0".parse::<Community>().unwrap(),
            Community::GRACEFUL_SHUTDOWN
        );
        assert_eq!(
            "graceful-shutdown".parse::<Community>().unwrap(),
            Community::GRACEFUL_SHUTDOWN
        );
        assert_eq!(
            "NO-EXPORT".parse::<Community>().unwrap(),
            Community::NO_EXPORT
        );
        assert_eq!(
            "65000:100".parse::<Community>().unwrap().to_string(),
            "65000:100"
        );
        assert!("65536:1".parse::<Community>().is_err());
        assert!("4200000001:1".parse::<Community>().is_err());
        assert_eq!(
            "4200000001:1:2".parse::<LargeCommunity>().unwrap(),
            LargeCommunity(4_200_000_001, 1, 2)
        );
        assert!("1:2".parse::<LargeCommunity>().is_err());
        assert!("1:2:3:4".parse::<LargeCommunity>().is_err());
    }
}

/// An IPVS scheduler, written by its kernel name (`"mh"`, `"wrr"`...). A name vipd does not
/// know parses as [`Scheduler::Other`] so that validation can locate it and suggest the
/// closest known one; a validated configuration never holds `Other`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Scheduler {
    /// Maglev hashing: the same table on every director (what ECMP needs).
    #[default]
    Mh,
    /// Source hashing.
    Sh,
    /// Destination hashing.
    Dh,
    /// Another kernel scheduler, by its name: `rr`, `wrr`, `lc`, `wlc`, `lblc`, `lblcr`,
    /// `sed`, `nq`, `fo`, `ovf`, `twos` (they keep per-director state) or an unknown name.
    Other(String),
}

impl Scheduler {
    /// The kernel's name.
    pub fn as_str(&self) -> &str {
        match self {
            Scheduler::Mh => "mh",
            Scheduler::Sh => "sh",
            Scheduler::Dh => "dh",
            Scheduler::Other(s) => s,
        }
    }

    /// The choice depends only on the packet and the destination set: every director with
    /// the same real servers sends a flow to the same one.
    pub fn consistent(&self) -> bool {
        !matches!(self, Scheduler::Other(_))
    }
}

impl From<&str> for Scheduler {
    fn from(s: &str) -> Self {
        match s {
            "mh" => Scheduler::Mh,
            "sh" => Scheduler::Sh,
            "dh" => Scheduler::Dh,
            other => Scheduler::Other(other.to_string()),
        }
    }
}

impl fmt::Display for Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Scheduler {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Scheduler {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(Scheduler::from(s.as_str()))
    }
}
