//! Latchkey's domain crate.
//!
//! Everything the Lambda functions and the local API share: key profiles and the typed secret
//! key, credential extraction from request headers, peppered hashing, identifiers, permissions,
//! tiers, the key record and its computed status, the one error enum and its envelope, the
//! [`store::KeyStore`] contract with its DynamoDB and embedded implementations, the pepper
//! providers, and typed configuration.

pub mod allowlist;
pub mod audit;
pub mod clock;
pub mod config;
pub mod credential;
pub mod credits;
pub mod datasource;
pub mod digest;
pub mod error;
pub mod events;
pub mod gateway;
pub mod ids;
pub mod ingest;
pub mod key;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod leaks;
pub mod lookup;
pub mod manage;
pub mod metadata;
pub mod pepper;
pub mod permission;
pub mod record;
#[cfg(test)]
pub(crate) mod scripted_http;
pub mod session;
pub mod store;
pub mod tier;
pub mod upstream;
pub mod verifications;

#[cfg(feature = "aws")]
pub mod aws;

pub use allowlist::IpAllowlist;
pub use clock::{Clock, ManualClock, OffsetClock, SystemClock};
pub use credential::{Credential, CredentialError, extract_credential};
pub use digest::{KeyDigest, KeyHasher, PepperVersion};
pub use error::ApiError;
pub use ids::{AuditId, DatasourceId, IdError, KeyId, TenantId};
pub use key::{ApiKey, KeyFormatError, KeyProfile, ProfileError};
pub use metadata::{KeyMeta, OwnerId};
pub use permission::{CustomPermission, InvalidPermission, Permission, Permissions};
pub use record::{GatewayKey, KeyChanges, KeyRecord, KeySpec, KeyStatus, Meter};
pub use tier::{Tier, TierName, Tiers};
