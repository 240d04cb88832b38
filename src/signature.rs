//! Every check of who sent a request, in one place: Bitbucket's `X-Hub-Signature`, Slack's
//! `X-Slack-Signature`, bearer tokens and shared secrets. Comparisons take the same time wherever
//! the inputs differ.

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// How old a Slack request may be (replay protection), as Slack recommends: 5 minutes.
pub const SLACK_MAX_AGE_SECONDS: i64 = 300;

/// Why a Bitbucket delivery's `X-Hub-Signature` is refused; the webhook answers 401.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BitbucketSignatureError {
    /// No `X-Hub-Signature` header (an unsigned delivery while secrets are configured).
    #[error("missing X-Hub-Signature header")]
    Missing,
    /// Not `sha256=` followed by 64 hex digits.
    #[error("X-Hub-Signature must look like sha256=<64 hex digits>")]
    Malformed,
    /// Well-formed, but no configured secret produces it for this body.
    #[error("X-Hub-Signature does not match the body for any configured secret")]
    Mismatch,
}

/// Checks Bitbucket's `X-Hub-Signature: sha256=<hex>` over the raw body against each secret (several allow
/// rotation). The comparison is constant-time (`Mac::verify_slice`).
pub fn verify_bitbucket(
    header: Option<&[u8]>,
    body: &[u8],
    secrets: &[SecretString],
) -> Result<(), BitbucketSignatureError> {
    let header = header.ok_or(BitbucketSignatureError::Missing)?;
    let hex_digest = header
        .strip_prefix(b"sha256=")
        .ok_or(BitbucketSignatureError::Malformed)?;
    let mut expected = [0u8; 32];
    hex::decode_to_slice(hex_digest, &mut expected)
        .map_err(|_| BitbucketSignatureError::Malformed)?;
    for secret in secrets {
        let mut mac = HmacSha256::new_from_slice(secret.expose_secret().as_bytes())
            .expect("HMAC accepts keys of any length");
        mac.update(body);
        if mac.verify_slice(&expected).is_ok() {
            return Ok(());
        }
    }
    Err(BitbucketSignatureError::Mismatch)
}

/// Why a Slack request is refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SlackSignatureError {
    #[error("missing or unreadable X-Slack-Request-Timestamp")]
    Timestamp,
    #[error("X-Slack-Request-Timestamp is more than 5 minutes away")]
    Stale,
    #[error("X-Slack-Signature must look like v0=<hex>")]
    Malformed,
    #[error("X-Slack-Signature does not match")]
    Mismatch,
}

/// Checks Slack's `X-Slack-Signature: v0=<hex HMAC-SHA256(secret, "v0:{timestamp}:{body}")>`,
/// with `X-Slack-Request-Timestamp` (Unix seconds) within 5 minutes of `now` either way.
/// Source: api.slack.com/authentication/verifying-requests-from-slack.
pub fn verify_slack(
    signature: &str,
    timestamp: Option<&str>,
    body: &[u8],
    secret: &SecretString,
    now: i64,
) -> Result<(), SlackSignatureError> {
    let timestamp: i64 = timestamp
        .and_then(|t| t.trim().parse().ok())
        .ok_or(SlackSignatureError::Timestamp)?;
    if now.abs_diff(timestamp) > SLACK_MAX_AGE_SECONDS.unsigned_abs() {
        return Err(SlackSignatureError::Stale);
    }
    let digest = signature
        .trim()
        .strip_prefix("v0=")
        .and_then(|h| hex::decode(h).ok())
        .ok_or(SlackSignatureError::Malformed)?;
    let mut mac = HmacSha256::new_from_slice(secret.expose_secret().as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(format!("v0:{timestamp}:").as_bytes());
    mac.update(body);
    mac.verify_slice(&digest)
        .map_err(|_| SlackSignatureError::Mismatch)
}

/// Compares digests of two secrets, in time independent of where they differ.
pub fn same_secret(presented: &str, expected: &str) -> bool {
    let a = Sha256::digest(presented.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// The token of an `Authorization: Bearer <token>` header. The scheme is case-insensitive
/// (RFC 9110 §11.1), so `bearer x` works as well.
pub fn bearer_token(authorization: Option<&str>) -> Option<&str> {
    let (scheme, token) = authorization?.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Whether `authorization` carries `Bearer <expected>`.
pub fn bearer_matches(authorization: Option<&str>, expected: &SecretString) -> bool {
    bearer_token(authorization).is_some_and(|t| same_secret(t, expected.expose_secret()))
}

/// `sha256=<hex>` for a body, as Bitbucket computes it. Used by tests and the benchmark.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac =
        HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(list: &[&str]) -> Vec<SecretString> {
        list.iter()
            .map(|s| SecretString::from(s.to_string()))
            .collect()
    }

    #[test]
    fn accepts_any_rotated_secret() {
        let body = br#"{"a":1}"#;
        let sig = sign("new", body);
        assert_eq!(
            verify_bitbucket(Some(sig.as_bytes()), body, &secrets(&["old", "new"])),
            Ok(())
        );
        assert_eq!(
            verify_bitbucket(Some(sig.as_bytes()), body, &secrets(&["old"])),
            Err(BitbucketSignatureError::Mismatch)
        );
    }

    #[test]
    fn rejects_missing_and_malformed() {
        let s = secrets(&["k"]);
        assert_eq!(
            verify_bitbucket(None, b"x", &s),
            Err(BitbucketSignatureError::Missing)
        );
        assert_eq!(
            verify_bitbucket(Some(b"sha1=abcd"), b"x", &s),
            Err(BitbucketSignatureError::Malformed)
        );
        assert_eq!(
            verify_bitbucket(Some(b"sha256=zz"), b"x", &s),
            Err(BitbucketSignatureError::Malformed)
        );
    }

    #[test]
    fn secret_comparison() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abd", "abc"));
        assert!(!same_secret("", "abc"));
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer_token(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer_token(Some("BEARER abc")), Some("abc"));
        assert_eq!(bearer_token(Some("Basic abc")), None);
        assert_eq!(bearer_token(Some("Bearer ")), None);
        assert_eq!(bearer_token(None), None);
        let secret = SecretString::from("abc".to_owned());
        assert!(bearer_matches(Some("bearer abc"), &secret));
        assert!(!bearer_matches(Some("Bearer abd"), &secret));
    }

    #[test]
    fn slack_signatures() {
        let secret = SecretString::from("8f742231b10e8888abcd99yyyzzz85a5".to_owned());
        let body = b"token=x&team_id=T1&command=%2Freviews";
        let mut mac = HmacSha256::new_from_slice(secret.expose_secret().as_bytes()).unwrap();
        mac.update(b"v0:1531420618:");
        mac.update(body);
        let good = format!("v0={}", hex::encode(mac.finalize().into_bytes()));
        let check =
            |sig: &str, ts: Option<&str>, now: i64| verify_slack(sig, ts, body, &secret, now);
        assert_eq!(check(&good, Some("1531420618"), 1531420618), Ok(()));
        // Exactly 5 minutes either way is still accepted; a second more is not.
        assert_eq!(check(&good, Some("1531420618"), 1531420918), Ok(()));
        assert_eq!(check(&good, Some("1531420618"), 1531420318), Ok(()));
        assert_eq!(
            check(&good, Some("1531420618"), 1531420919),
            Err(SlackSignatureError::Stale)
        );
        assert_eq!(
            check(&good, Some("1531420618"), 1531420317),
            Err(SlackSignatureError::Stale)
        );
        assert_eq!(check(&good, None, 0), Err(SlackSignatureError::Timestamp));
        assert_eq!(
            check(&good, Some("soon"), 0),
            Err(SlackSignatureError::Timestamp)
        );
        assert_eq!(
            check("v1=abc", Some("1531420618"), 1531420618),
            Err(SlackSignatureError::Malformed)
        );
        assert_eq!(
            check(
                &good.replace("v0=", "v0=00"),
                Some("1531420618"),
                1531420618
            ),
            Err(SlackSignatureError::Mismatch)
        );
    }

    #[test]
    fn any_byte_change_breaks_it() {
        let sig = sign("k", b"hello");
        assert_eq!(
            verify_bitbucket(Some(sig.as_bytes()), b"hellp", &secrets(&["k"])),
            Err(BitbucketSignatureError::Mismatch)
        );
    }
}
