use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer};

/// What time it is, as a value the store and pure code can hold without knowing where the time
/// comes from (the clock module's `Clock::reader` gives the service's).
pub type Now = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// An instant, stored as UTC RFC 3339 text with exactly six fractional digits
/// (`2023-05-16T10:33:04.281505Z`).
///
/// The fixed width makes text order equal time order, so SQLite compares stored instants with
/// plain `>=` and `julianday()` reads them, and an operator reads them in `sqlite3` as they are.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Timestamp(String);

impl Timestamp {
    /// The instant, to the microsecond (anything finer is dropped).
    pub fn from_datetime(at: DateTime<Utc>) -> Self {
        Self(at.to_rfc3339_opts(SecondsFormat::Micros, true))
    }

    /// The current time by the system clock (the service reads its `Clock` instead,
    /// so that tests move it; this is for one-off commands such as `outbox retry`).
    pub fn now() -> Self {
        Self::from_datetime(Utc::now())
    }

    /// Accepts RFC 3339 with any offset (`+00:00`, `Z`) and any number of fractional digits, and
    /// the colon-less offset Bitbucket Data Center writes (`2019-03-26T15:49:39+0530`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let parsed = DateTime::parse_from_rfc3339(text)
            .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z"))
            .map_err(|_| format!("`{text}` is not an RFC 3339 date-time"))?;
        Ok(Self::from_datetime(parsed.with_timezone(&Utc)))
    }

    /// Epoch milliseconds, as older Bitbucket Data Center versions send `createdDate`.
    pub fn from_epoch_millis(millis: i64) -> Option<Self> {
        DateTime::<Utc>::from_timestamp_millis(millis).map(Self::from_datetime)
    }

    /// The stored text, e.g. `2023-05-16T10:33:04.281505Z`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The instant as a `chrono` value, for arithmetic.
    pub fn to_datetime(&self) -> DateTime<Utc> {
        // The inner text is always produced by `from_datetime`, so it parses.
        DateTime::parse_from_rfc3339(&self.0)
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_default()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Timestamp::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_offsets_and_precision() {
        let a = Timestamp::parse("2023-05-16T10:33:04.281505+00:00").unwrap();
        assert_eq!(a.as_str(), "2023-05-16T10:33:04.281505Z");
        let b = Timestamp::parse("2019-03-26T15:49:39+0530").unwrap();
        assert_eq!(b.as_str(), "2019-03-26T10:19:39.000000Z");
        let c = Timestamp::parse("2023-05-16T12:33:04.3+02:00").unwrap();
        assert_eq!(c.as_str(), "2023-05-16T10:33:04.300000Z");
        assert!(a < c, "text order is time order");
    }

    #[test]
    fn rejects_garbage() {
        assert!(Timestamp::parse("yesterday").is_err());
        assert!(Timestamp::parse("").is_err());
    }

    #[test]
    fn epoch_millis() {
        let t = Timestamp::from_epoch_millis(1_553_595_579_000).unwrap();
        assert_eq!(t.as_str(), "2019-03-26T10:19:39.000000Z");
        assert_eq!(t.to_datetime().timestamp_millis(), 1_553_595_579_000);
    }
}
