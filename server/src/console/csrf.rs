//! The console's forms against requests forged by other sites. A form that changes something
//! is taken only when both hold:
//!
//! - the browser says the request comes from the console's own origin (`Origin`, which
//!   browsers send with every POST; else `Sec-Fetch-Site: same-origin`);
//! - it carries the token the console put in the form for the same client certificate: an
//!   HMAC-SHA256 of the certificate's fingerprint under a key the hub makes when it starts.
//!
//! A certificate is the session here (the only cookie the console sets is the browser's
//! language, which changes nothing on the hub), so the token is per certificate and
//! per run of the hub: a form shown before a restart is refused after it, and asks to be
//! opened again.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use http::{HeaderMap, Uri, header};
use ring::{hmac, rand::SystemRandom};

#[derive(Debug, Clone)]
pub struct Csrf {
    key: hmac::Key,
}

impl Csrf {
    /// A new key, from the system's randomness.
    pub fn new() -> Self {
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &SystemRandom::new()).expect("the system gives randomness");
        Self { key }
    }

    /// The token for forms shown to the holder of the certificate with `fingerprint`.
    pub fn token(&self, fingerprint: &str) -> String {
        B64.encode(hmac::sign(&self.key, fingerprint.as_bytes()).as_ref())
    }

    /// Whether `token` is the one given for `fingerprint` (compared in constant time).
    pub fn check(&self, fingerprint: &str, token: &str) -> bool {
        let Ok(tag) = B64.decode(token.trim()) else { return false };
        hmac::verify(&self.key, fingerprint.as_bytes(), &tag).is_ok()
    }
}

impl Default for Csrf {
    fn default() -> Self {
        Self::new()
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
        let csrf = Csrf::new();
        let token = csrf.token("ab12");
        assert!(csrf.check("ab12", &token));
        assert!(!csrf.check("ab13", &token));
        assert!(!csrf.check("ab12", &token[2..]));
        assert!(!csrf.check("ab12", "zz"));
        assert!(!Csrf::new().check("ab12", &token), "another run's key");
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
