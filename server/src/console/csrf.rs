//! The console's forms against requests forged by other sites. A form that changes something
//! is taken only when both hold:
//!
//! - the browser says the request comes from the console's own origin (`Origin`, which
//!   browsers send with every POST; else `Sec-Fetch-Site: same-origin`);
//! - it carries the token the console put in the form for the same client certificate: the
//!   day (UTC) it was given and an HMAC-SHA256 of that day and the certificate's fingerprint,
//!   under a key derived from the hub's audit signing key; it holds on that day and the next.
//!
//! A certificate is the session here (the only cookie the console sets is the browser's
//! language, which changes nothing on the hub). Because the key comes from the signing key,
//! which every hub of a province shares, a form shown by one hub is taken by another behind
//! the same address, and after a restart; a token seen by someone else stops holding within
//! two days, and never holds for another certificate.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use http::{HeaderMap, Uri, header};
use ring::{hmac, rand::SystemRandom};

use crate::domain::clock::Clock;

/// What the key is derived from: the signing key's signature of this text (Ed25519 signs
/// deterministically, and no one without the key can make it).
pub const KEY_LABEL: &[u8] = b"telesub console form tokens v1";

#[derive(Debug, Clone)]
pub struct Csrf {
    key: hmac::Key,
    clock: Clock,
}

impl Csrf {
    /// A key from the system's randomness: tokens hold for this run only.
    pub fn new(clock: Clock) -> Self {
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &SystemRandom::new()).expect("the system gives randomness");
        Self { key, clock }
    }

    /// A key from a secret every hub of the province holds (see [`KEY_LABEL`]).
    pub fn from_secret(secret: &[u8], clock: Clock) -> Self {
        Self { key: hmac::Key::new(hmac::HMAC_SHA256, secret), clock }
    }

    /// Days since 1970 (UTC).
    fn day(&self) -> u32 {
        (self.clock.now().unix_timestamp().div_euclid(86_400)).clamp(0, u32::MAX as i64) as u32
    }

    fn tag(&self, day: u32, fingerprint: &str) -> hmac::Tag {
        let mut message = day.to_be_bytes().to_vec();
        message.extend_from_slice(fingerprint.as_bytes());
        hmac::sign(&self.key, &message)
    }

    /// The token for forms shown to the holder of the certificate with `fingerprint`.
    pub fn token(&self, fingerprint: &str) -> String {
        let day = self.day();
        let mut bytes = day.to_be_bytes().to_vec();
        bytes.extend_from_slice(self.tag(day, fingerprint).as_ref());
        B64.encode(bytes)
    }

    /// Whether `token` is one given for `fingerprint` today or yesterday (the tag compared in
    /// constant time).
    pub fn check(&self, fingerprint: &str, token: &str) -> bool {
        let Ok(bytes) = B64.decode(token.trim()) else { return false };
        let Some((day, tag)) = bytes.split_first_chunk::<4>() else { return false };
        let (day, today) = (u32::from_be_bytes(*day), self.day());
        if day != today && day.checked_add(1) != Some(today) {
            return false;
        }
        let mut message = day.to_be_bytes().to_vec();
        message.extend_from_slice(fingerprint.as_bytes());
        hmac::verify(&self.key, &message, tag).is_ok()
    }
}

/// Whether the browser says the request comes from this console's origin.
pub fn same_origin(headers: &HeaderMap, uri: &Uri) -> bool {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).or_else(|| uri.authority().map(|a| a.as_str()));
    // A browser told not to send referrers may send `Origin: null`; then its fetch metadata
    // says where the request comes from.
    match (headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()).filter(|o| *o != "null"), host) {
        (Some(origin), Some(host)) => origin.strip_prefix("https://") == Some(host),
        (Some(_), None) => false,
        (None, _) => headers.get("sec-fetch-site").is_some_and(|s| s == "same-origin"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_holds_for_its_certificate_only() {
        let csrf = Csrf::new(Clock::system());
        let token = csrf.token("ab12");
        assert!(csrf.check("ab12", &token));
        assert!(!csrf.check("ab13", &token));
        assert!(!csrf.check("ab12", &token[2..]));
        assert!(!csrf.check("ab12", "zz"));
        assert!(!csrf.check("ab12", ""));
        assert!(!Csrf::new(Clock::system()).check("ab12", &token), "another run's random key");
    }

    /// Hubs with the same secret take each other's tokens, on the day given and the next only.
    #[test]
    fn a_token_holds_across_hubs_of_one_secret_for_its_day_and_the_next() {
        let clock = Clock::fixed(time::macros::datetime!(2025-03-10 23:59:00 UTC));
        let (one, other) = (Csrf::from_secret(b"secret", clock.clone()), Csrf::from_secret(b"secret", clock.clone()));
        let token = one.token("ab12");
        assert!(other.check("ab12", &token), "another hub of the same secret");
        assert!(!Csrf::from_secret(b"another", clock.clone()).check("ab12", &token));
        clock.set_to(time::macros::datetime!(2025-03-11 23:59:00 UTC));
        assert!(other.check("ab12", &token), "the next day");
        clock.set_to(time::macros::datetime!(2025-03-12 00:00:00 UTC));
        assert!(!other.check("ab12", &token), "two days on");
        // A token's day cannot be moved on: the tag covers it.
        let mut bytes = B64.decode(&token).unwrap();
        bytes[3] += 2;
        assert!(!other.check("ab12", &B64.encode(bytes)));
    }

    #[test]
    fn the_origin_must_be_the_consoles_own() {
        let uri: Uri = "/console/x".parse().unwrap();
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, v.parse().unwrap());
            }
            h
        };
        assert!(same_origin(&headers(&[("host", "hub:8443"), ("origin", "https://hub:8443")]), &uri));
        assert!(!same_origin(&headers(&[("host", "hub:8443"), ("origin", "https://evil.example")]), &uri));
        assert!(!same_origin(&headers(&[("host", "hub:8443"), ("origin", "http://hub:8443")]), &uri));
        assert!(same_origin(&headers(&[("sec-fetch-site", "same-origin")]), &uri));
        assert!(!same_origin(&headers(&[("sec-fetch-site", "cross-site")]), &uri));
        assert!(!same_origin(&headers(&[]), &uri));
        assert!(same_origin(&headers(&[("origin", "null"), ("sec-fetch-site", "same-origin")]), &uri));
        assert!(!same_origin(&headers(&[("origin", "null"), ("sec-fetch-site", "cross-site")]), &uri));
        assert!(!same_origin(&headers(&[("origin", "null")]), &uri));
        let h2: Uri = "https://hub:8443/console/x".parse().unwrap();
        assert!(same_origin(&headers(&[("origin", "https://hub:8443")]), &h2));
    }
}
