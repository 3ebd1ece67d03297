//! Signed checkpoints of the audit tree, in the C2SP signed-note form
//! (<https://c2sp.org/signed-note>, <https://c2sp.org/tlog-checkpoint>):
//!
//! ```text
//! <origin>
//! <tree size, decimal>
//! <root hash, base64>
//! time <signing time, RFC 3339, UTC>
//!
//! — <key name> <base64 of the 4-byte key id and the 64-byte Ed25519 signature>
//! ```
//!
//! The signature covers the text above the blank line, its final newline included. The key id
//! is the first four bytes of SHA-256 of the key name, a newline, the byte `0x01` (Ed25519) and
//! the 32-byte public key. The key name is the log's origin. A verifier key is written as
//! `<name>+<key id, 8 hex digits>+<base64 of 0x01 and the public key>`.

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use ring::signature::{Ed25519KeyPair, KeyPair};
pub use telesub_proto::audit::{Checkpoint, Receipt, VerifierKey, key_id};

/// The log's name, first line of every checkpoint, unless configured.
pub const DEFAULT_ORIGIN: &str = "telesub audit";

/// The hub's signing key.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    name: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("name", &self.name).field("key_id", &self.verifier().key_id_hex()).finish()
    }
}

/// A new Ed25519 key as PKCS#8 PEM (`PRIVATE KEY`).
pub fn generate_pem() -> String {
    let der = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).expect("key generation works");
    let body = B64.encode(der.as_ref());
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    pem
}

impl SigningKey {
    /// Reads a PKCS#8 PEM Ed25519 key; `name` is the log's origin.
    pub fn from_pem(pem: &str, name: &str) -> Result<Self, String> {
        use rustls_pki_types::{PrivatePkcs8KeyDer, pem::PemObject};
        let der = PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes())
            .map_err(|e| format!("not a PKCS#8 PEM private key: {e}"))?;
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der.secret_pkcs8_der())
            .map_err(|e| format!("not an Ed25519 key: {e}"))?;
        check_name(name)?;
        Ok(Self { pair, name: name.to_owned() })
    }

    /// The key's name: the log's origin.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn verifier(&self) -> VerifierKey {
        VerifierKey {
            name: self.name.clone(),
            public: self.pair.public_key().as_ref().try_into().expect("Ed25519 public keys are 32 bytes"),
        }
    }

    /// Signs bytes (a receipt, a note's body).
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.pair.sign(message).as_ref().try_into().expect("Ed25519 signatures are 64 bytes")
    }

    /// The signed note of a checkpoint.
    pub fn sign_checkpoint(&self, checkpoint: &Checkpoint) -> String {
        self.sign_note(&checkpoint.body())
    }

    /// The signed note of a receipt.
    pub fn sign_receipt(&self, receipt: &Receipt) -> String {
        self.sign_note(&receipt.body())
    }

    /// A note's text followed by this key's signature line.
    pub fn sign_note(&self, body: &str) -> String {
        let mut sig = key_id(&self.name, self.pair.public_key().as_ref()).to_vec();
        sig.extend_from_slice(&self.sign(body.as_bytes()));
        format!("{body}\n\u{2014} {} {}\n", self.name, B64.encode(sig))
    }
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.contains('+') || name.chars().any(|c| c.is_whitespace() && c != ' ') {
        return Err(format!("{name:?} cannot name a log: no '+', no newlines"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_checkpoint_opens_with_its_key_only() {
        let key = SigningKey::from_pem(&generate_pem(), DEFAULT_ORIGIN).unwrap();
        let checkpoint = Checkpoint {
            origin: DEFAULT_ORIGIN.into(),
            size: 42,
            root: super::super::merkle::leaf_hash(b"x"),
            time: time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap(),
        };
        let note = key.sign_checkpoint(&checkpoint);
        assert!(note.starts_with("telesub audit\n42\n"), "{note}");
        let verifier = VerifierKey::parse(&key.verifier().to_text()).unwrap();
        assert_eq!(verifier.open(&note).unwrap(), checkpoint);

        let changed = note.replacen("\n42\n", "\n43\n", 1);
        assert!(verifier.open(&changed).unwrap_err().contains("does not match"));
        let other = SigningKey::from_pem(&generate_pem(), DEFAULT_ORIGIN).unwrap().verifier();
        assert!(other.open(&note).unwrap_err().contains("not signed by"));
        assert!(VerifierKey::parse("telesub audit+00000000+AQ==").is_err());
        assert!(SigningKey::from_pem("not a key", DEFAULT_ORIGIN).is_err());
    }
}
