//! HTTP statuses an HTTP check accepts: a number (`200`) or a range (`"200-299"`), as
//! keepalived's `status_code` takes them. The default, any 2xx, is keepalived's too.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An inclusive range of HTTP statuses (one status is a range of one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StatusRange {
    /// First status accepted.
    pub lo: u16,
    /// Last status accepted.
    pub hi: u16,
}

impl StatusRange {
    /// Any 2xx: the default.
    pub const ANY_2XX: StatusRange = StatusRange { lo: 200, hi: 299 };

    /// Whether `status` is in the range.
    pub fn contains(&self, status: u16) -> bool {
        (self.lo..=self.hi).contains(&status)
    }

    /// Both ends are HTTP statuses (100..=599) and in order.
    pub fn is_valid(&self) -> bool {
        (100..=599).contains(&self.lo) && (self.lo..=599).contains(&self.hi)
    }
}

impl fmt::Display for StatusRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}

impl std::str::FromStr for StatusRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("invalid status range {s:?} (write e.g. 200, \"200-299\")");
        let num = |t: &str| t.trim().parse::<u16>().map_err(|_| bad());
        match s.split_once('-') {
            Some((a, b)) => Ok(StatusRange {
                lo: num(a)?,
                hi: num(b)?,
            }),
            None => {
                let v = num(s)?;
                Ok(StatusRange { lo: v, hi: v })
            }
        }
    }
}

impl<'de> Deserialize<'de> for StatusRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = StatusRange;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an HTTP status such as 200, or a range such as \"200-299\"")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<StatusRange, E> {
                let v = u16::try_from(v)
                    .map_err(|_| E::custom(format!("{v} is not an HTTP status")))?;
                Ok(StatusRange { lo: v, hi: v })
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<StatusRange, E> {
                self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<StatusRange, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for StatusRange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.lo == self.hi {
            s.serialize_u16(self.lo)
        } else {
            s.collect_str(self)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_ranges() {
        let r: StatusRange = "200-299".parse().unwrap();
        assert!(r.contains(204) && !r.contains(301) && r.is_valid());
        assert_eq!(r.to_string(), "200-299");
        let one: StatusRange = "301".parse().unwrap();
        assert_eq!(
            (one.lo, one.hi, one.to_string()),
            (301, 301, "301".to_string())
        );
        assert!(!"299-200".parse::<StatusRange>().unwrap().is_valid());
        assert!("2xx".parse::<StatusRange>().is_err());
    }
}
