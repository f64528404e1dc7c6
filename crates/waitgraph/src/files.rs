//! Hot directories: file objects grouped by directory.
//!
//! The seed case's question that needed Process Monitor ("who fills
//! `\Windows\Temp` with `sess_*` files?") is answered from the file objects
//! in memory and the handles that hold them.

use std::collections::{HashMap, HashSet};

use crate::verdict::{Addr, HotDirectory, NamePattern, ProcessFiles};
use crate::WaitGraphInput;

/// Name patterns kept per directory before the rest are counted as other.
const MAX_PATTERNS_PER_DIR: usize = 1024;
/// File names kept as samples per directory.
const SAMPLES: usize = 5;

/// How a kernel writes paths: Windows (`\Windows\Temp\sess_1`, names
/// compared without case) or POSIX (`/run/flood/sess_1`, names compared
/// exactly). Told apart by the first character, so both kernels' paths go
/// through the same hot-directory code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathStyle {
    /// Backslashes, case-insensitive.
    Windows,
    /// Slashes, case-sensitive.
    Posix,
}

impl PathStyle {
    /// The style of `path`: POSIX when it starts with `/`.
    pub fn of(path: &str) -> PathStyle {
        if path.starts_with('/') {
            PathStyle::Posix
        } else {
            PathStyle::Windows
        }
    }

    /// The separator.
    pub fn separator(self) -> char {
        match self {
            PathStyle::Windows => '\\',
            PathStyle::Posix => '/',
        }
    }

    /// The key two spellings of one directory share.
    fn key(self, dir: &str) -> String {
        match self {
            PathStyle::Windows => dir.to_lowercase(),
            PathStyle::Posix => dir.to_string(),
        }
    }

    /// What a directory's file count counts, for reports: the file objects
    /// in memory on Windows, the directory's dentries in the dcache on
    /// Linux.
    pub fn counted_objects(self) -> &'static str {
        match self {
            PathStyle::Windows => "file objects in memory",
            PathStyle::Posix => "files in the dcache",
        }
    }
}

/// The directory part of a path: `\Windows\Temp\sess_1` -> `\Windows\Temp`,
/// `\boot.ini` -> `\`, `/run/flood/sess_1` -> `/run/flood`. `None` for a
/// path without a separator.
pub fn directory_of(path: &str) -> Option<&str> {
    let sep = PathStyle::of(path).separator();
    let cut = path.trim_end_matches(sep).rfind(sep)?;
    Some(if cut == 0 { &path[..1] } else { &path[..cut] })
}

/// The file name part of a path.
fn name_of(path: &str) -> &str {
    let sep = PathStyle::of(path).separator();
    let p = path.trim_end_matches(sep);
    p.rfind(sep).map_or(p, |i| &p[i + 1..])
}

/// The key of the directory of `path`.
fn dir_key(path: &str) -> Option<String> {
    directory_of(path).map(|d| PathStyle::of(path).key(d))
}

/// A pattern for a file name: the stem up to the first `_` or `-`, or up to
/// the first digit, then `*` (`sess_8a7f` -> `sess_*`, `tmp12.tmp` ->
/// `tmp*`). Names without such a break are their own pattern.
pub fn pattern_of(name: &str) -> String {
    let lower = name.to_lowercase();
    let mut stem_end = None;
    for (i, ch) in lower.char_indices() {
        if i > 32 {
            break;
        }
        if ch == '_' || ch == '-' {
            stem_end = Some(i + ch.len_utf8());
            break;
        }
        if ch.is_ascii_digit() && i > 0 {
            stem_end = Some(i);
            break;
        }
    }
    match stem_end {
        Some(e) if e < lower.len() => format!("{}*", &lower[..e]),
        _ => lower,
    }
}

#[derive(Debug, Default)]
struct DirAcc {
    display: String,
    objects: HashSet<Addr>,
    /// Paths seen without a file object address (I/O with no object).
    loose: HashSet<String>,
    holders: HashMap<u64, usize>,
    io_pids: HashMap<u64, usize>,
    patterns: HashMap<String, usize>,
    samples: Vec<String>,
    blocking: bool,
}

impl DirAcc {
    fn files(&self) -> usize {
        self.objects.len() + self.loose.len()
    }

    fn add_name(&mut self, path: &str) {
        let name = name_of(path);
        let pat = pattern_of(name);
        if let Some(c) = self.patterns.get_mut(&pat) {
            *c += 1;
        } else if self.patterns.len() < MAX_PATTERNS_PER_DIR {
            self.patterns.insert(pat, 1);
        }
        if self.samples.len() < SAMPLES * 4 {
            self.samples.push(name.to_string());
        }
    }
}

/// File objects grouped by directory (case-insensitive for Windows paths,
/// exact for POSIX ones: [`PathStyle`]).
#[derive(Debug, Default)]
pub(crate) struct DirIndex {
    dirs: HashMap<String, DirAcc>,
    pub unnamed: usize,
}

impl DirIndex {
    /// Index every file object and every pending I/O's file.
    pub fn build(input: &WaitGraphInput) -> DirIndex {
        let mut ix = DirIndex::default();
        for f in &input.files {
            let Some(acc) = ix.dir_mut(&f.path) else {
                ix.unnamed += 1;
                continue;
            };
            let new = acc.objects.insert(f.address);
            if new {
                acc.add_name(&f.path);
            }
            let mut pids: Vec<u64> = f.holders.clone();
            pids.sort_unstable();
            pids.dedup();
            for pid in pids {
                *acc.holders.entry(pid).or_default() += 1;
            }
        }
        for t in &input.threads {
            for io in &t.io {
                let Some(path) = io.file.as_deref() else {
                    continue;
                };
                let Some(acc) = ix.dir_mut(path) else {
                    continue;
                };
                // `/run/flood/.`: work on the directory itself (a listing),
                // not a file in it.
                if name_of(path) == "." {
                    *acc.io_pids.entry(t.pid).or_default() += 1;
                    continue;
                }
                let new = match io.file_object {
                    Some(fo) => acc.objects.insert(fo),
                    None => acc.loose.insert(path.to_lowercase()),
                };
                if new {
                    acc.add_name(path);
                }
                *acc.io_pids.entry(t.pid).or_default() += 1;
            }
        }
        ix
    }

    fn dir_mut(&mut self, path: &str) -> Option<&mut DirAcc> {
        let dir = directory_of(path)?;
        let acc = self.dirs.entry(dir_key(path)?).or_default();
        if acc.display.is_empty() {
            acc.display = dir.to_string();
        }
        Some(acc)
    }

    /// Number of file objects in the directory of `path`.
    pub fn files_in_dir_of(&self, path: &str) -> usize {
        dir_key(path)
            .and_then(|d| self.dirs.get(&d))
            .map_or(0, DirAcc::files)
    }

    /// Mark the directory of `path` as touched by blocking I/O.
    pub fn mark_blocking(&mut self, path: &str) {
        if let Some(acc) = dir_key(path).and_then(|d| self.dirs.get_mut(&d)) {
            acc.blocking = true;
        }
    }

    /// Handle holders in the directory of `path`, most files first.
    pub fn holders_of_dir_of(&self, path: &str, names: &HashMap<u64, &str>) -> Vec<ProcessFiles> {
        dir_key(path)
            .and_then(|d| self.dirs.get(&d))
            .map(|acc| ranked(&acc.holders, names))
            .unwrap_or_default()
    }

    /// The reported hot directories: at least `min_files` files, the `top`
    /// largest, plus every directory blocking I/O touches.
    pub fn hot(
        &self,
        min_files: usize,
        top: usize,
        names: &HashMap<u64, &str>,
    ) -> Vec<HotDirectory> {
        let mut all: Vec<&DirAcc> = self.dirs.values().collect();
        all.sort_by(|a, b| {
            b.files()
                .cmp(&a.files())
                .then_with(|| a.display.cmp(&b.display))
        });
        let mut out = Vec::new();
        for (i, acc) in all.iter().enumerate() {
            let big = acc.files() >= min_files && i < top;
            if !big && !acc.blocking {
                continue;
            }
            let mut patterns: Vec<NamePattern> = acc
                .patterns
                .iter()
                .map(|(p, &c)| NamePattern {
                    pattern: p.clone(),
                    count: c,
                })
                .collect();
            patterns.sort_by(|a, b| {
                b.count
                    .cmp(&a.count)
                    .then_with(|| a.pattern.cmp(&b.pattern))
            });
            patterns.truncate(5);
            let mut samples = acc.samples.clone();
            samples.sort();
            samples.dedup();
            samples.truncate(SAMPLES);
            out.push(HotDirectory {
                path: acc.display.clone(),
                files: acc.files(),
                holders: ranked(&acc.holders, names),
                io_processes: ranked(&acc.io_pids, names),
                blocking_io: acc.blocking,
                patterns,
                samples,
            });
        }
        out
    }
}

fn ranked(counts: &HashMap<u64, usize>, names: &HashMap<u64, &str>) -> Vec<ProcessFiles> {
    let mut v: Vec<ProcessFiles> = counts
        .iter()
        .map(|(&pid, &files)| ProcessFiles {
            name: names
                .get(&pid)
                .map_or_else(|| "?".to_string(), |n| n.to_string()),
            pid,
            files,
        })
        .collect();
    v.sort_by(|a, b| b.files.cmp(&a.files).then(a.pid.cmp(&b.pid)));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_and_patterns() {
        assert_eq!(
            directory_of(r"\Windows\Temp\sess_1"),
            Some(r"\Windows\Temp")
        );
        assert_eq!(directory_of(r"\boot.ini"), Some("\\"));
        assert_eq!(directory_of("noslash"), None);
        assert_eq!(directory_of(r"\Windows\Temp\"), Some(r"\Windows"));
        assert_eq!(pattern_of("sess_8a7f3c"), "sess_*");
        assert_eq!(pattern_of("TMP1234.tmp"), "tmp*");
        assert_eq!(pattern_of("ntuser.dat"), "ntuser.dat");
        assert_eq!(pattern_of("sess_"), "sess_");
        assert_eq!(pattern_of("é_ü"), "é_*");
    }

    #[test]
    fn posix_paths_take_the_same_seam() {
        assert_eq!(directory_of("/run/flood/sess_1"), Some("/run/flood"));
        assert_eq!(directory_of("/init"), Some("/"));
        assert_eq!(directory_of("/run/flood/"), Some("/run"));
        assert_eq!(directory_of("/run/flood/."), Some("/run/flood"));
        assert_eq!(name_of("/run/flood/sess_1"), "sess_1");
        // A backslash is an ordinary character in a POSIX name.
        assert_eq!(directory_of(r"/tmp/a\b"), Some("/tmp"));
        // POSIX directories differ by case; Windows ones do not.
        assert_ne!(dir_key("/tmp/A/x"), dir_key("/tmp/a/x"));
        assert_eq!(dir_key(r"\Windows\Temp\x"), dir_key(r"\WINDOWS\temp\y"));
        assert_eq!(
            PathStyle::of("/run").counted_objects(),
            "files in the dcache"
        );
    }

    #[test]
    fn a_linux_directory_counts_its_files_and_holders() {
        let file = |a: u64, p: &str, h: &[u64]| crate::File {
            address: Addr(a),
            path: p.into(),
            device: Some("tmpfs".into()),
            holders: h.to_vec(),
        };
        let input = WaitGraphInput {
            files: vec![
                file(1, "/run/flood/sess_1", &[7]),
                file(2, "/run/flood/sess_2", &[7]),
                file(3, "/run/flood/SESS_3", &[]),
                file(4, "/run/Flood/sess_4", &[]),
            ],
            ..WaitGraphInput::default()
        };
        let ix = DirIndex::build(&input);
        assert_eq!(ix.files_in_dir_of("/run/flood/x"), 3);
        assert_eq!(ix.files_in_dir_of("/run/flood/."), 3);
        assert_eq!(ix.files_in_dir_of("/run/Flood/x"), 1);
        let names = HashMap::from([(7, "php-cgi")]);
        let h = ix.holders_of_dir_of("/run/flood/.", &names);
        assert_eq!(
            (h[0].name.as_str(), h[0].pid, h[0].files),
            ("php-cgi", 7, 2)
        );
    }
}
