//! Docker API version numbers (`1.44`), as used in `/v1.44/...` path prefixes.

use std::fmt;
use std::str::FromStr;

/// An API version, `major.minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiVersion {
    pub major: u16,
    pub minor: u16,
}

impl ApiVersion {
    pub const fn new(major: u16, minor: u16) -> Self {
        ApiVersion { major, minor }
    }
    /// The newest API version Berth implements. The docker CLI 28 speaks 1.50.
    pub const MAX: ApiVersion = ApiVersion::new(1, 50);
    /// The oldest API version Berth accepts (dockerd's MinAPIVersion).
    pub const MIN: ApiVersion = ApiVersion::new(1, 24);
}

/// Requests without a `/vX.Y` prefix get the newest version, as in dockerd.
impl Default for ApiVersion {
    fn default() -> Self {
        ApiVersion::MAX
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid API version {0:?}")]
pub struct ParseVersionError(pub String);

impl FromStr for ApiVersion {
    type Err = ParseVersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseVersionError(s.to_string());
        let (maj, min) = s.split_once('.').ok_or_else(err)?;
        let digits =
            |p: &str| !p.is_empty() && p.len() <= 4 && p.bytes().all(|b| b.is_ascii_digit());
        if !digits(maj) || !digits(min) {
            return Err(err());
        }
        Ok(ApiVersion {
            major: maj.parse().map_err(|_| err())?,
            minor: min.parse().map_err(|_| err())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders() {
        let v: ApiVersion = "1.44".parse().expect("parse");
        assert_eq!(v, ApiVersion::new(1, 44));
        assert!(ApiVersion::new(1, 9) < ApiVersion::new(1, 10));
        assert!(ApiVersion::MIN < ApiVersion::MAX);
        assert_eq!(ApiVersion::MAX.to_string(), "1.50");
    }

    #[test]
    fn rejects_garbage() {
        for s in ["", "1", "1.", ".1", "a.b", "1.2.3", "1.-2", "99999.1"] {
            assert!(s.parse::<ApiVersion>().is_err(), "{s:?} should not parse");
        }
    }
}
