//! Interstella HQ's domain, at the centre of the hexagon.
//!
//! * [`domain`] holds types that cannot hold an invalid value (a [`domain::Username`],
//!   an [`domain::ApiKey`], parsed [`domain::Amounts`]) and the pure rules over them.
//! * [`ports`] are the traits the outside world implements: the embedded store for
//!   the all-in-one mode, DynamoDB and friends for the deployed mode.
//! * [`services`] are the behaviours every mode shares, written once over the ports.
//!
//! Nothing here knows HTTP, SQL or AWS.

pub mod clock;
pub mod domain;
pub mod error;
pub mod hq;
pub mod ports;
pub mod services;

pub use error::{CoreError, StoreError};
pub use hq::{Hq, HqConfig, Ports};
