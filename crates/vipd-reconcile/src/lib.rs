//! vipd's IPVS reconciler: desired state (configuration + health) and actual state (a kernel
//! dump) in, an ordered list of IPVS operations out. Pure: no I/O, no runtime; the daemon's
//! IPVS task executes the plan and feeds the results back.
//!
//! See [`plan`](plan::plan) for the rules (ownership, never flush, one change one
//! operation, and the canonical destination order that keeps `mh` tables identical across
//! directors).

mod desired;
mod digest;
mod plan;
#[cfg(test)]
mod tests;
mod view;

pub use desired::{Health, all_up, desired, service, service_key};
pub use digest::{table_digest, table_text};
pub use plan::{DesiredService, Plan, canonical_order, plan, plan_some};
pub use view::{KernelView, ViewError};
