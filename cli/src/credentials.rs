//! Where the command line finds the API and its key: `LATCHKEY_URL` and `LATCHKEY_KEY` from the
//! environment, or what `latchkey login` stored in `$XDG_CONFIG_HOME/latchkey/credentials.json`
//! (`~/.config/…` without it), a file only its owner may read (0600, in a 0700 directory). The
//! key is never taken from the command line, where other users of the machine see it.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    pub url: String,
    pub key: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("url", &self.url).finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("not logged in: run `latchkey login --url URL`, or set LATCHKEY_URL and LATCHKEY_KEY")]
    Missing,
    #[error("{path}: {cause}")]
    File { path: String, cause: String },
    #[error("{path} may be read by others (mode {mode:o}): `chmod 600 {path}`, or log in again")]
    Exposed { path: String, mode: u32 },
    #[error("neither XDG_CONFIG_HOME nor HOME is set: where to keep the credentials is unknown")]
    NoHome,
}

/// The file `login` writes: `$XDG_CONFIG_HOME/latchkey/credentials.json`.
pub fn path(var: impl Fn(&str) -> Option<String>) -> Result<PathBuf, CredentialsError> {
    let base = var("XDG_CONFIG_HOME")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| var("HOME").filter(|home| !home.is_empty()).map(|home| Path::new(&home).join(".config")))
        .ok_or(CredentialsError::NoHome)?;
    Ok(base.join("latchkey").join("credentials.json"))
}

/// The environment's (both variables set) or else the stored credentials.
pub fn load(var: impl Fn(&str) -> Option<String>) -> Result<Credentials, CredentialsError> {
    if let (Some(url), Some(key)) = (var("LATCHKEY_URL"), var("LATCHKEY_KEY")) {
        return Ok(Credentials { url, key: key.trim().to_owned() });
    }
    let path = path(&var)?;
    let file_error =
        |cause: std::io::Error| CredentialsError::File { path: path.display().to_string(), cause: cause.to_string() };
    let metadata = match fs::metadata(&path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Err(CredentialsError::Missing),
        Err(error) => return Err(file_error(error)),
    };
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(CredentialsError::Exposed { path: path.display().to_string(), mode });
    }
    let text = fs::read_to_string(&path).map_err(file_error)?;
    let mut stored: Credentials = serde_json::from_str(&text)
        .map_err(|e| CredentialsError::File { path: path.display().to_string(), cause: e.to_string() })?;
    if let Some(url) = var("LATCHKEY_URL") {
        stored.url = url;
    }
    Ok(stored)
}

/// Writes `credentials` for the next commands: a new file, 0600 from its creation, renamed over
/// the old one.
pub fn store(var: impl Fn(&str) -> Option<String>, credentials: &Credentials) -> Result<PathBuf, CredentialsError> {
    let path = path(var)?;
    let error =
        |cause: std::io::Error| CredentialsError::File { path: path.display().to_string(), cause: cause.to_string() };
    let dir = path.parent().expect("the file is in a directory");
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(error)?;
    let partial = dir.join(".credentials.json.partial");
    let _ = fs::remove_file(&partial);
    let mut file = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&partial).map_err(error)?;
    let text = serde_json::to_string(credentials).expect("credentials serialize");
    file.write_all(text.as_bytes()).and_then(|()| file.sync_all()).map_err(error)?;
    fs::rename(&partial, &path).map_err(error)?;
    Ok(path)
}
