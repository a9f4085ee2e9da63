//! The ownership record: which IPVS services vipd created.
//!
//! IPVS has no field to tag a service with its creator, so vipd remembers its own in
//! `<state_dir>/ipvs-services`, one service per line (`TCP 198.51.100.1:80`). A service in
//! the kernel that is neither configured nor recorded here is an operator's: reported as
//! foreign and never touched.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};

use vipd_ipvs::ServiceKey;

/// The record and where it lives.
#[derive(Debug)]
pub struct OwnedStore {
    path: PathBuf,
    keys: BTreeSet<ServiceKey>,
}

impl OwnedStore {
    /// Loads the record from `state_dir` (empty when absent). Unparseable lines are skipped
    /// and returned, so the caller can log them: a damaged record must not stop a director.
    pub fn load(state_dir: &Path) -> (Self, Vec<String>) {
        let path = state_dir.join("ipvs-services");
        let mut keys = BTreeSet::new();
        let mut bad = Vec::new();
        if let Ok(text) = std::fs::read_to_string(&path) {
            for line in text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
            {
                match line.parse() {
                    Ok(k) => {
                        keys.insert(k);
                    }
                    Err(e) => bad.push(e),
                }
            }
        }
        (Self { path, keys }, bad)
    }

    /// The recorded services.
    pub fn keys(&self) -> &BTreeSet<ServiceKey> {
        &self.keys
    }

    /// Replaces the record and writes it atomically and durably (temporary file, fsync,
    /// rename, fsync of the directory).
    pub fn save(&mut self, keys: BTreeSet<ServiceKey>) -> io::Result<()> {
        if keys == self.keys && self.path.exists() {
            return Ok(());
        }
        let mut text =
            String::from("# IPVS services created by vipd (do not edit while vipd runs)\n");
        for k in &keys {
            text.push_str(&format!("{k}\n"));
        }
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        // A fresh file (O_EXCL: never through a link left there), on disk before it replaces
        // the record, and the directory entry on disk after: a crash or power loss leaves
        // the old record or the new one, never an empty file that would orphan services.
        let tmp = self.path.with_extension("tmp");
        let _ = std::fs::remove_file(&tmp);
        {
            use std::io::Write as _;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        self.keys = keys;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damaged_lines() {
        let dir = std::env::temp_dir().join(format!("vipd-owned-{}", std::process::id()));
        let (mut s, bad) = OwnedStore::load(&dir);
        assert!(s.keys().is_empty() && bad.is_empty());
        let k: ServiceKey = "TCP [2001:db8::1]:80".parse().unwrap();
        s.save(BTreeSet::from([k])).unwrap();
        let (s2, _) = OwnedStore::load(&dir);
        assert_eq!(s2.keys(), &BTreeSet::from([k]));
        std::fs::write(dir.join("ipvs-services"), "TCP 198.51.100.1:80\ngarbage\n").unwrap();
        let (s3, bad) = OwnedStore::load(&dir);
        assert_eq!(s3.keys().len(), 1);
        assert_eq!(bad.len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
