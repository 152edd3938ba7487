//! The local API's files: the data directory 0700, the store, pepper and admin key files 0600,
//! and a symlink in their place refused, not followed.

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use latchkey::config::Env;
use latchkey_local::{LocalConfig, LocalError};

fn config(data_dir: &Path, admin_key_file: &Path) -> LocalConfig {
    let (data, file) = (data_dir.display().to_string(), admin_key_file.display().to_string());
    LocalConfig::from_env(&Env::from_fn(move |name| match name {
        "LATCHKEY_DATA_DIR" => Some(data.clone()),
        "LATCHKEY_ADMIN_KEY_FILE" => Some(file.clone()),
        _ => None,
    }))
    .unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap().permissions().mode() & 0o777
}

async fn open(config: &LocalConfig) -> Result<Option<String>, LocalError> {
    latchkey_local::open(config, latchkey_local::system_clock()).await.map(|(_, admin_key)| admin_key)
}

#[tokio::test]
async fn a_fresh_start_makes_the_directory_0700_and_every_file_0600() {
    let root = tempfile::tempdir().unwrap();
    let (data, key_file) = (root.path().join("nested/data"), root.path().join("admin-key"));
    let admin_key = open(&config(&data, &key_file)).await.unwrap().expect("an empty store gets an admin key");
    assert_eq!(mode(&data), 0o700);
    for file in [data.join("latchkey.redb"), data.join("pepper"), key_file.clone()] {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), admin_key);
}

#[tokio::test]
async fn an_existing_readable_admin_key_file_is_replaced_not_written_through() {
    let root = tempfile::tempdir().unwrap();
    let (data, key_file) = (root.path().join("data"), root.path().join("admin-key"));
    std::fs::write(&key_file, "an old key").unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let admin_key = open(&config(&data, &key_file)).await.unwrap().unwrap();
    assert_eq!(mode(&key_file), 0o600);
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), admin_key);
}

#[tokio::test]
async fn a_symlink_for_the_admin_key_file_is_refused_before_the_key_is_made() {
    let root = tempfile::tempdir().unwrap();
    let (data, key_file, elsewhere) =
        (root.path().join("data"), root.path().join("admin-key"), root.path().join("world-readable"));
    std::fs::write(&elsewhere, "").unwrap();
    std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o644)).unwrap();
    symlink(&elsewhere, &key_file).unwrap();
    let refused = open(&config(&data, &key_file)).await.unwrap_err();
    assert!(matches!(refused, LocalError::AdminKeyFile { .. }), "{refused}");
    assert!(refused.to_string().contains("LATCHKEY_ADMIN_KEY_FILE") && refused.to_string().contains("symlink"));
    assert_eq!(std::fs::read_to_string(&elsewhere).unwrap(), "", "nothing written through the link");
    // No key was made: the next start, with a proper file, still gets the first admin key.
    std::fs::remove_file(&key_file).unwrap();
    assert!(open(&config(&data, &key_file)).await.unwrap().is_some());
}

#[tokio::test]
async fn a_data_directory_others_may_enter_or_a_symlinked_one_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let key_file = root.path().join("admin-key");
    let open_dir = root.path().join("open");
    std::fs::create_dir(&open_dir).unwrap();
    std::fs::set_permissions(&open_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let refused = open(&config(&open_dir, &key_file)).await.unwrap_err();
    assert!(refused.to_string().contains("chmod 700"), "{refused}");
    assert!(std::fs::read_dir(&open_dir).unwrap().next().is_none(), "nothing created in it");

    let private = root.path().join("private");
    std::fs::create_dir(&private).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    let link = root.path().join("link");
    symlink(&private, &link).unwrap();
    let refused = open(&config(&link, &key_file)).await.unwrap_err();
    assert!(matches!(refused, LocalError::DataDir { .. }) && refused.to_string().contains("symlink"), "{refused}");
}
