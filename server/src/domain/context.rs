//! What the programme's services are built from, said once: the store's ports, the register as
//! the services that only read it see it, the administrative units, the policy and the clock.
//! Each service takes from it the ports it uses and keeps only those.

use std::sync::Arc;

use super::{
    clock::Clock,
    policy::PolicyRegistry,
    ports::{RegisterStore, Store},
    unit_registry::UnitRegistry,
};

#[derive(Debug, Clone)]
pub struct ServiceContext {
    /// The backend: every port.
    pub store: Arc<dyn Store>,
    /// The register as read by the services that only read it (eligibility, the feed,
    /// reconciliation, statistics): the hub's read model in front of the store's register
    /// port when serving ([`Self::with_register`]), else that port itself. Services that write
    /// the register, or must read what their own transaction wrote, use the store's port.
    pub register: Arc<dyn RegisterStore>,
    pub units: Arc<UnitRegistry>,
    pub policy: Arc<PolicyRegistry>,
    /// The system's clock unless set ([`Self::with_clock`]).
    pub clock: Clock,
}

impl ServiceContext {
    pub fn new(store: Arc<dyn Store>, units: Arc<UnitRegistry>, policy: Arc<PolicyRegistry>) -> Self {
        Self { register: store.clone(), store, units, policy, clock: Clock::system() }
    }

    /// Reading services read households' histories through `register` (the hub's read model).
    pub fn with_register(mut self, register: Arc<dyn RegisterStore>) -> Self {
        self.register = register;
        self
    }

    /// Every service reads the date and time from `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }
}
