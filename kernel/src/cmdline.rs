//! The kernel command line (`-append` in QEMU): space-separated `key=value`.

use alloc::string::String;
use alloc::vec::Vec;

pub struct Cmdline {
    args: Vec<(String, String)>,
}

impl Cmdline {
    pub fn parse(s: &str) -> Self {
        let args = s
            .split_whitespace()
            .map(|w| match w.split_once('=') {
                Some((k, v)) => (String::from(k), String::from(v)),
                None => (String::from(w), String::new()),
            })
            .collect();
        Cmdline { args }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.args
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A comma-separated list value (`ktest=a,b`).
    pub fn list(&self, key: &str) -> Vec<&str> {
        self.get(key)
            .map(|v| v.split(',').filter(|s| !s.is_empty()).collect())
            .unwrap_or_default()
    }
}
