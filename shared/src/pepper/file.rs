//! The local pepper: a JSON file created with mode 0600 on first use, for the local API.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rand::TryRngCore;
use rand::rngs::OsRng;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{MIN_PEPPER_BYTES, Pepper, PepperError, PepperProvider, PepperSet};
use crate::PepperVersion;

#[derive(Debug, Clone)]
pub struct FilePepper {
    path: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    version: String,
    hex: String,
}

#[derive(Serialize, Deserialize)]
struct PepperFile {
    current: Stored,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    previous: Option<Stored>,
}

impl FilePepper {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn name(&self) -> String {
        self.path.display().to_string()
    }

    fn error(&self, cause: impl std::fmt::Display) -> PepperError {
        PepperError::Unavailable { secret: self.name(), cause: cause.to_string() }
    }

    fn fresh() -> Stored {
        let mut bytes = Zeroizing::new([0u8; MIN_PEPPER_BYTES]);
        OsRng.try_fill_bytes(&mut *bytes).expect("the OS random number generator failed");
        Stored { version: format!("local-{}", uuid::Uuid::now_v7().simple()), hex: hex::encode(*bytes) }
    }

    /// Writes the whole file anew, 0600 from its first byte, then renames it into place.
    fn write(&self, file: &PepperFile) -> Result<(), PepperError> {
        let json = Zeroizing::new(serde_json::to_vec_pretty(file).map_err(|e| self.error(e))?);
        let temp = self.path.with_extension("tmp");
        let _ = fs::remove_file(&temp);
        let mut out =
            fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temp).map_err(|e| self.error(e))?;
        out.write_all(&json).and_then(|()| out.sync_all()).map_err(|e| self.error(e))?;
        fs::rename(&temp, &self.path).map_err(|e| self.error(e))
    }

    fn read(&self) -> Result<PepperFile, PepperError> {
        let mode = fs::metadata(&self.path).map_err(|e| self.error(e))?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(self.error(format!("mode {:o} lets others read it; run chmod 600", mode & 0o777)));
        }
        let text = Zeroizing::new(fs::read(&self.path).map_err(|e| self.error(e))?);
        serde_json::from_slice(&text).map_err(|e| self.error(format!("not a pepper file: {e}")))
    }

    fn pepper(&self, stored: &Stored) -> Result<Pepper, PepperError> {
        let bytes = hex::decode(&stored.hex).map_err(|_| self.error("the pepper is not hex"))?;
        Pepper::new(bytes, PepperVersion::new(&stored.version), &self.name())
    }

    /// Creates the file with a new random pepper if it does not exist yet.
    pub fn ensure_exists(&self) -> Result<(), PepperError> {
        if self.path.exists() {
            return Ok(());
        }
        if let Some(dir) = self.path.parent() {
            fs::create_dir_all(dir).map_err(|e| self.error(e))?;
        }
        self.write(&PepperFile { current: Self::fresh(), previous: None })
    }

    /// Makes a new current pepper; the current one becomes the previous one.
    pub fn rotate(&self) -> Result<(), PepperError> {
        let old = self.read()?;
        self.write(&PepperFile { current: Self::fresh(), previous: Some(old.current) })
    }
}

impl PepperProvider for FilePepper {
    async fn load(&self) -> Result<PepperSet, PepperError> {
        self.ensure_exists()?;
        let file = self.read()?;
        let current = self.pepper(&file.current)?;
        let previous = file.previous.as_ref().map(|p| self.pepper(p)).transpose()?;
        Ok(PepperSet::new(&current, previous.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeyProfile;

    #[tokio::test]
    async fn created_0600_stable_and_rotatable() {
        let dir = tempfile::tempdir().unwrap();
        let provider = FilePepper::new(dir.path().join("sub/pepper.json"));
        let first = provider.load().await.unwrap();
        let mode = fs::metadata(provider.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = provider.load().await.unwrap();
        let key = KeyProfile::latchkey().generate();
        assert_eq!(first.current.digest(&key), again.current.digest(&key));
        assert!(first.previous.is_none());

        provider.rotate().unwrap();
        let rotated = provider.load().await.unwrap();
        assert_ne!(rotated.current.version(), first.current.version());
        assert_eq!(rotated.previous.as_ref().unwrap().digest(&key), first.current.digest(&key));
    }

    #[tokio::test]
    async fn refuses_short_or_exposed_peppers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pepper.json");
        let provider = FilePepper::new(&path);
        provider
            .write(&PepperFile { current: Stored { version: "v".into(), hex: "00".repeat(16) }, previous: None })
            .unwrap();
        let error = provider.load().await.unwrap_err();
        assert!(
            matches!(&error, PepperError::TooShort { secret, len: 16 } if secret.ends_with("pepper.json")),
            "{error}"
        );

        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let error = provider.load().await.unwrap_err().to_string();
        assert!(error.contains("chmod 600") && error.contains("pepper.json"), "{error}");
    }
}
