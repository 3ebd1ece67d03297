//! Who is calling: from the organisation code a certificate names to an active member.
//!
//! Member records are cached for a short time so that a call does not cost a database read;
//! writes through [`crate::domain::members::MemberRegistry`] drop the cached entry at once, and
//! other hubs sharing a PostgreSQL database see a change within the cache lifetime.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use super::clock::Clock;
use super::member::{Member, MemberStatus, OrgCode};
use crate::domain::ports::{MemberStore, PortError};

/// How often the last use of a certificate is written back at most.
const CERTIFICATE_USE_INTERVAL: Duration = Duration::from_secs(3_600);

/// Why a certificate's organisation may not call.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("organisation {0} is not a member of the hub")]
    Unknown(OrgCode),
    #[error("member {0} is suspended")]
    Suspended(OrgCode),
    #[error("could not look up the member")]
    Storage(#[from] PortError),
}

#[derive(Debug)]
pub struct Identities {
    member_store: Arc<dyn MemberStore>,
    ttl: Duration,
    members: Mutex<HashMap<OrgCode, (Instant, Option<Member>)>>,
    certificate_uses: Mutex<HashMap<(OrgCode, String), Instant>>,
    clock: Clock,
}

impl Identities {
    /// Members are kept `ttl` after they were read; `clock` dates the uses of a certificate.
    pub fn new(store: Arc<dyn MemberStore>, ttl: Duration, clock: Clock) -> Self {
        Self { member_store: store, ttl, members: Mutex::default(), certificate_uses: Mutex::default(), clock }
    }

    /// The active member for `code`, noting the certificate it called with. The member
    /// returned lists that certificate among the ones it has used.
    pub async fn resolve(&self, code: &OrgCode, fingerprint: &str) -> Result<Member, IdentityError> {
        let member = self.member(code).await?.ok_or_else(|| IdentityError::Unknown(code.clone()))?;
        if member.status == MemberStatus::Suspended {
            return Err(IdentityError::Suspended(code.clone()));
        }
        if self.note_certificate(code, fingerprint).await? {
            // Read again, so that the record shows this certificate's use.
            return self.member(code).await?.ok_or_else(|| IdentityError::Unknown(code.clone()));
        }
        Ok(member)
    }

    async fn member(&self, code: &OrgCode) -> Result<Option<Member>, PortError> {
        if let Some(found) = self.cached(code) {
            return Ok(found);
        }
        let found = self.member_store.get_member(code).await?;
        self.members.lock().expect("identity cache").insert(code.clone(), (Instant::now(), found.clone()));
        Ok(found)
    }

    /// Forgets what is cached about `code`; the next call reads the database.
    pub fn invalidate(&self, code: &OrgCode) {
        self.members.lock().expect("identity cache").remove(code);
    }

    fn cached(&self, code: &OrgCode) -> Option<Option<Member>> {
        let cache = self.members.lock().expect("identity cache");
        cache.get(code).filter(|(at, _)| at.elapsed() < self.ttl).map(|(_, m)| m.clone())
    }

    /// Records the use of a certificate at most once per interval; returns whether it wrote.
    async fn note_certificate(&self, code: &OrgCode, fingerprint: &str) -> Result<bool, PortError> {
        let key = (code.clone(), fingerprint.to_owned());
        let due = {
            let uses = self.certificate_uses.lock().expect("certificate use cache");
            uses.get(&key).is_none_or(|at| at.elapsed() >= CERTIFICATE_USE_INTERVAL)
        };
        if due {
            self.member_store.record_certificate_use(code, fingerprint, self.clock.now()).await?;
            self.certificate_uses.lock().expect("certificate use cache").insert(key, Instant::now());
            self.invalidate(code);
        }
        Ok(due)
    }
}
