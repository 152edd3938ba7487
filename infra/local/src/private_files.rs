//! The local API's files hold the pepper, every key's digest and the first admin key: its data
//! directory is 0700, its files 0600 from their first byte, and a symlink in their place is
//! refused rather than followed (it could point the admin key at a file others read).

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Creates `dir` (and its parents) 0700, or checks that the existing one is a directory no one
/// else may enter.
pub fn data_dir(dir: &Path) -> Result<(), String> {
    match fs::symlink_metadata(dir) {
        Ok(meta) if meta.file_type().is_symlink() => Err("is a symlink; name the directory itself".to_owned()),
        Ok(meta) if !meta.is_dir() => Err("is not a directory".to_owned()),
        Ok(meta) => private_mode(&meta, "700"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // The parents it makes get the same mode (narrowed by the umask, never widened).
            fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| e.to_string())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Makes `path` an empty 0600 file if there is none, or checks the existing one: not a symlink,
/// readable by its owner only. For files another library then opens (the store).
pub fn file(path: &Path) -> Result<(), String> {
    match regular_file(path)? {
        Some(meta) => private_mode(&meta, "600"),
        None => fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map(drop)
            .map_err(|e| e.to_string()),
    }
}

/// Checks that `text` may be written to `path` (nothing there, or a regular file: never a
/// symlink), so that a refusal comes before the secret is made.
pub fn writable(path: &Path) -> Result<(), String> {
    regular_file(path).map(drop)
}

/// The regular file at `path`, `None` if there is nothing; a symlink or anything else refused.
fn regular_file(path: &Path) -> Result<Option<fs::Metadata>, String> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Err("is a symlink; name the file itself".to_owned()),
        Ok(meta) if !meta.is_file() => Err("is not a regular file".to_owned()),
        Ok(meta) => Ok(Some(meta)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// Writes `text` to `path` as a new 0600 file: written beside it under a fresh name, then
/// renamed over it, so an existing file (whatever its mode) is replaced, never written through.
pub fn write_secret(path: &Path, text: &str) -> Result<(), String> {
    writable(path)?;
    let name = path.file_name().ok_or("names no file")?.to_string_lossy();
    let temp = path.with_file_name(format!(".{name}.{}.tmp", uuid::Uuid::now_v7().simple()));
    let written = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)
        .and_then(|mut file| file.write_all(text.as_bytes()).and_then(|()| file.sync_all()))
        .and_then(|()| fs::rename(&temp, path));
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    written.map_err(|e| e.to_string())
}

fn private_mode(meta: &fs::Metadata, wanted: &str) -> Result<(), String> {
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!("mode {mode:o} lets others in; run chmod {wanted}"));
    }
    Ok(())
}

/// The secret in `path` (made on first use: 32 random bytes as hex, written as [`write_secret`]
/// writes), for files only this process reads whole (the session secret).
pub fn secret(path: &Path) -> Result<String, String> {
    match regular_file(path)? {
        Some(meta) => {
            private_mode(&meta, "600")?;
            Ok(fs::read_to_string(path).map_err(|e| e.to_string())?.trim().to_owned())
        }
        None => {
            let mut bytes = [0u8; 32];
            rand::TryRngCore::try_fill_bytes(&mut rand::rngs::OsRng, &mut bytes)
                .map_err(|e| format!("the OS random number generator failed: {e}"))?;
            let text = hex::encode(bytes);
            write_secret(path, &text)?;
            Ok(text)
        }
    }
}
