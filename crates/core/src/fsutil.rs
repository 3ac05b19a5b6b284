//! Durable, private file creation shared by the services (the admin token, the
//! ledger key, design files): the only file I/O of this crate.

use std::io::Write as _;
use std::path::Path;

/// What [`create_private_once`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Created {
    /// This call wrote the file.
    New,
    /// The file was there already (perhaps written by a racing process); its text.
    Existing(String),
}

/// Create `path` holding `text`, readable by its owner only (0600 from the
/// moment it exists), complete and synced before it appears under its name, and
/// its directory entry synced too. If the file exists, or another process
/// creates it first, nothing is written and its text is returned.
pub fn create_private_once(path: &Path, text: &str) -> std::io::Result<Created> {
    match std::fs::read_to_string(path) {
        Ok(existing) => return Ok(Created::Existing(existing)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    create_dir_durably(dir)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(
        ".{name}.tmp.{}.{:x}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
    ));
    let written = write_private(&tmp, text);
    // A hard link fails when the name exists: the first process to link wins.
    let linked = written.and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            sync_dir(dir)?;
            Ok(Created::New)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(Created::Existing(std::fs::read_to_string(path)?)),
        Err(e) => Err(e),
    }
}

/// Writes `text` to `path` readable by its owner only (mode 0600 from its
/// creation), replacing what was there: a private temporary file, synced, then
/// renamed over it.
pub fn replace_private(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    write_private(&tmp, text)?;
    std::fs::rename(&tmp, path)?;
    sync_dir(dir)
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

/// Make the entries of directory `dir` durable (a new or renamed file in it).
/// Platforms that cannot open a directory skip it.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    match std::fs::File::open(dir) {
        Ok(d) => d.sync_all(),
        Err(_) if cfg!(not(unix)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Create `dir` (and its missing parents) if missing, syncing each new entry's
/// parent, so the directory survives a crash as the files written into it do.
pub fn create_dir_durably(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_durably(parent)?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        // Created meanwhile by someone else, who syncs the parent.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    }
    sync_dir(dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")))
}

/// Whether others than the owner may read or write `path` (always false off Unix).
pub fn is_shared(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_private_and_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("secret");
        assert_eq!(create_private_once(&path, "one\n").unwrap(), Created::New);
        assert_eq!(create_private_once(&path, "two\n").unwrap(), Created::Existing("one\n".into()));
        assert!(!is_shared(&path));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let left: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, vec![std::ffi::OsString::from("secret")], "no temporary file is left behind");
    }

    #[test]
    fn racing_creators_agree_on_one_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let texts: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let path = path.clone();
                    s.spawn(move || match create_private_once(&path, &format!("t{i}")).unwrap() {
                        Created::New => format!("t{i}"),
                        Created::Existing(t) => t,
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(texts.iter().all(|t| *t == texts[0]), "{texts:?}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), texts[0]);
    }
}
