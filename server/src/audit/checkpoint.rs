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
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use super::merkle::Hash;

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

/// A public key checkpoints are checked with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierKey {
    pub name: String,
    pub public: [u8; 32],
}

fn key_id(name: &str, public: &[u8]) -> [u8; 4] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(name.as_bytes());
    ctx.update(b"\n\x01");
    ctx.update(public);
    ctx.finish().as_ref()[..4].try_into().expect("4 bytes")
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
        let body = checkpoint.body();
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

impl VerifierKey {
    pub fn key_id(&self) -> [u8; 4] {
        key_id(&self.name, &self.public)
    }

    pub fn key_id_hex(&self) -> String {
        crate::hex(&self.key_id())
    }

    /// `<name>+<key id>+<base64 of 0x01 and the public key>`.
    pub fn to_text(&self) -> String {
        let mut raw = vec![0x01];
        raw.extend_from_slice(&self.public);
        format!("{}+{}+{}", self.name, self.key_id_hex(), B64.encode(raw))
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        // The name has no '+'; the key's base64 may.
        let mut parts = text.splitn(3, '+');
        let (Some(name), Some(id), Some(raw)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("{text:?} is not a verifier key (name+id+key)"));
        };
        let raw = B64.decode(raw).map_err(|e| format!("the verifier key's key is not base64: {e}"))?;
        let public: [u8; 32] = match raw.as_slice() {
            [0x01, rest @ ..] => rest.try_into().map_err(|_| "an Ed25519 key is 32 bytes".to_owned())?,
            _ => return Err("the verifier key is not an Ed25519 key".into()),
        };
        let key = Self { name: name.to_owned(), public };
        if key.key_id_hex() != id.to_ascii_lowercase() {
            return Err(format!("the verifier key's id {id} does not match its key"));
        }
        Ok(key)
    }

    /// Checks a signature made with the matching signing key.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), String> {
        UnparsedPublicKey::new(&ED25519, &self.public)
            .verify(message, signature)
            .map_err(|_| "the signature does not match".to_owned())
    }

    /// Reads a signed checkpoint, checking its signature by this key.
    pub fn open(&self, note: &str) -> Result<Checkpoint, String> {
        let Some((body, signatures)) = note.split_once("\n\n") else {
            return Err("a signed note has its text, a blank line, then signature lines".into());
        };
        let body = format!("{body}\n");
        let mut verified = false;
        for line in signatures.lines() {
            let Some(rest) = line.strip_prefix("\u{2014} ") else {
                return Err(format!("{line:?} is not a signature line"));
            };
            let Some((name, sig)) = rest.rsplit_once(' ') else { continue };
            if name != self.name {
                continue;
            }
            let sig = B64.decode(sig).map_err(|e| format!("a signature is not base64: {e}"))?;
            if sig.len() != 68 || sig[..4] != self.key_id() {
                continue;
            }
            self.verify(body.as_bytes(), &sig[4..])
                .map_err(|_| format!("the checkpoint's signature by {} does not match its text", self.name))?;
            verified = true;
        }
        if !verified {
            return Err(format!("the checkpoint is not signed by {} ({})", self.name, self.key_id_hex()));
        }
        Checkpoint::parse_body(&body)
    }
}

/// A tree size and root at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
    pub time: OffsetDateTime,
}

impl Checkpoint {
    /// The signed text.
    pub fn body(&self) -> String {
        let time = self.time.to_offset(time::UtcOffset::UTC).replace_nanosecond(0).unwrap_or(self.time);
        format!(
            "{}\n{}\n{}\ntime {}\n",
            self.origin,
            self.size,
            B64.encode(self.root),
            time.format(&Rfc3339).expect("a time formats")
        )
    }

    fn parse_body(body: &str) -> Result<Self, String> {
        let lines: Vec<&str> = body.lines().collect();
        let [origin, size, root, rest @ ..] = lines.as_slice() else {
            return Err("a checkpoint has an origin, a size and a root hash".into());
        };
        let size = size.parse().map_err(|_| format!("{size:?} is not a tree size"))?;
        let root: Hash = B64
            .decode(root)
            .ok()
            .and_then(|r| r.try_into().ok())
            .ok_or_else(|| format!("{root:?} is not a base64 SHA-256 hash"))?;
        let time = rest.iter().find_map(|l| l.strip_prefix("time ")).ok_or("the checkpoint has no time line")?;
        let time = OffsetDateTime::parse(time, &Rfc3339).map_err(|e| format!("{time:?} is not a time: {e}"))?;
        Ok(Self { origin: (*origin).to_owned(), size, root, time })
    }
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
            time: OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap(),
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
