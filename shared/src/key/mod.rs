//! The wire format of keys: `{prefix}_{body}` as chosen by a deployment's [`KeyProfile`].

mod profile;
mod secret;

pub use profile::{KeyFormatError, KeyProfile, ProfileError};
pub use secret::ApiKey;
