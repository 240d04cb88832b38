use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing X-Hub-Signature header")]
    Missing,
    #[error("X-Hub-Signature must look like sha256=<64 hex digits>")]
    Malformed,
    #[error("X-Hub-Signature does not match the body for any configured secret")]
    Mismatch,
}

/// Checks `X-Hub-Signature: sha256=<hex>` over the raw body against each secret (several allow
/// rotation). The comparison is constant-time (`Mac::verify_slice`).
pub fn verify(
    header: Option<&[u8]>,
    body: &[u8],
    secrets: &[SecretString],
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let hex_digest = header
        .strip_prefix(b"sha256=")
        .ok_or(SignatureError::Malformed)?;
    let mut expected = [0u8; 32];
    hex::decode_to_slice(hex_digest, &mut expected).map_err(|_| SignatureError::Malformed)?;
    for secret in secrets {
        let mut mac = HmacSha256::new_from_slice(secret.expose_secret().as_bytes())
            .expect("HMAC accepts keys of any length");
        mac.update(body);
        if mac.verify_slice(&expected).is_ok() {
            return Ok(());
        }
    }
    Err(SignatureError::Mismatch)
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
            verify(Some(sig.as_bytes()), body, &secrets(&["old", "new"])),
            Ok(())
        );
        assert_eq!(
            verify(Some(sig.as_bytes()), body, &secrets(&["old"])),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn rejects_missing_and_malformed() {
        let s = secrets(&["k"]);
        assert_eq!(verify(None, b"x", &s), Err(SignatureError::Missing));
        assert_eq!(
            verify(Some(b"sha1=abcd"), b"x", &s),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(Some(b"sha256=zz"), b"x", &s),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn any_byte_change_breaks_it() {
        let sig = sign("k", b"hello");
        assert_eq!(
            verify(Some(sig.as_bytes()), b"hellp", &secrets(&["k"])),
            Err(SignatureError::Mismatch)
        );
    }
}
