//! Open files: each file table (`task->files`, a `struct files_struct`
//! shared by the threads of a process and by `CLONE_FILES` children), its
//! descriptors (`files->fdt->fd[]`, bounded by `fdtable.max_fds` and
//! [`MAX_FDS`]), each file's path through the mounts; and who holds files
//! under a directory (the Linux form of `handles --path`).

use crate::error::Result;
use crate::model::{FileTable, FilesReport, OpenFd, PathHolder, TaskInfo};
use crate::view::Reader;
use crate::waits::{file_path, fs_name, MAX_FDS};
use crate::warning;
use hangscope_x64::VirtAddr;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Most descriptors listed in one report (every table together).
pub const MAX_LISTED_FDS: usize = 1 << 20;

/// What to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilesQuery {
    /// Only the table of the task with this pid (or thread group id).
    pub pid: Option<i64>,
    /// Only files at or under this path.
    pub path: Option<String>,
}

/// Whether `path` is `dir` or under it (component-wise: `/run/hang` does
/// not hold `/run/hangar`).
pub fn under(path: &str, dir: &str) -> bool {
    let dir = dir.trim_end_matches('/');
    if dir.is_empty() {
        return path.starts_with('/');
    }
    path == dir
        || path
            .strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The file tables of `tasks` (each once, with the tasks sharing it), as
/// `query` narrows them.
pub fn files(r: &Reader<'_>, tasks: &[TaskInfo], query: &FilesQuery) -> FilesReport {
    let mut out = FilesReport {
        pid: query.pid,
        path: query.path.clone(),
        tables: Vec::new(),
        holders: Vec::new(),
        distinct_files: 0,
        warnings: Vec::new(),
    };
    // Tables in task-list order, each with the tasks using it.
    let mut order: Vec<(VirtAddr, Vec<&TaskInfo>)> = Vec::new();
    let mut index: HashMap<u64, usize> = HashMap::new();
    for t in tasks {
        match r.object("task_struct", t.task).ptr("files") {
            Ok(f) if f.0 != 0 => match index.get(&f.0) {
                Some(&i) => order[i].1.push(t),
                None => {
                    index.insert(f.0, order.len());
                    order.push((f, vec![t]));
                }
            },
            Ok(_) => {}
            Err(e) => out.warnings.push(warning(&e)),
        }
    }
    if let Some(pid) = query.pid {
        order.retain(|(_, ts)| {
            ts.iter()
                .any(|t| i64::from(t.pid) == pid || i64::from(t.tgid) == pid)
        });
    }
    let mut listed = 0usize;
    let mut seen: HashSet<u64> = HashSet::new();
    let mut holders: BTreeMap<i32, (String, HashSet<u64>, u64)> = BTreeMap::new();
    for (table, users) in order {
        let first = users[0];
        let mut ft = FileTable {
            files_struct: table,
            tgid: first.tgid,
            comm: first.comm.clone(),
            pids: users.iter().map(|t| t.pid).collect(),
            max_fds: None,
            fds: Vec::new(),
            truncated: false,
            warnings: Vec::new(),
        };
        match descriptors(r, table) {
            Ok((max, ptrs)) => {
                ft.max_fds = Some(max);
                ft.truncated = max > MAX_FDS;
                for (fd, file) in ptrs {
                    if listed >= MAX_LISTED_FDS {
                        ft.truncated = true;
                        break;
                    }
                    let o = open_fd(r, fd, file);
                    if let Some(dir) = &query.path {
                        if !o.path.as_deref().is_some_and(|p| under(p, dir)) {
                            continue;
                        }
                        let h = holders
                            .entry(first.tgid)
                            .or_insert_with(|| (first.comm.clone(), HashSet::new(), 0));
                        h.1.insert(file.0);
                        h.2 += 1;
                    }
                    seen.insert(file.0);
                    listed += 1;
                    ft.fds.push(o);
                }
            }
            Err(e) => ft.warnings.push(warning(&e)),
        }
        if query.path.is_none() || !ft.fds.is_empty() || !ft.warnings.is_empty() {
            out.tables.push(ft);
        }
    }
    out.distinct_files = seen.len() as u64;
    out.holders = holders
        .into_iter()
        .map(|(tgid, (comm, files, fds))| PathHolder {
            tgid,
            comm,
            files: files.len() as u64,
            fds,
        })
        .collect();
    out.holders
        .sort_by_key(|h| (std::cmp::Reverse(h.files), h.tgid));
    out
}

/// A table's `max_fds` and its non-empty slots (at most [`MAX_FDS`]).
fn descriptors(r: &Reader<'_>, table: VirtAddr) -> Result<(u64, Vec<(u32, VirtAddr)>)> {
    let fdt = r.object("files_struct", table).deref("fdt", "fdtable")?;
    let max = fdt.uint("max_fds")?;
    let arr = fdt.ptr("fd")?;
    let n = max.min(MAX_FDS);
    let bytes = r.mem.read_vec(arr, n * 8, MAX_FDS * 8)?;
    Ok((
        max,
        bytes
            .chunks_exact(8)
            .enumerate()
            .filter_map(|(i, c)| {
                let p = u64::from_le_bytes(c.try_into().unwrap_or([0; 8]));
                (p != 0).then_some((i as u32, VirtAddr(p)))
            })
            .collect(),
    ))
}

/// One descriptor's file: path, file system, inode number, position.
fn open_fd(r: &Reader<'_>, fd: u32, file: VirtAddr) -> OpenFd {
    let fo = r.object("file", file);
    let inode = fo.ptr("f_inode").ok().filter(|i| i.0 != 0);
    let fs_type = inode.and_then(|i| fs_name(r, i));
    let ino = inode.and_then(|i| r.object("inode", i).uint("i_ino").ok());
    // What /proc/PID/fd shows for the kernel's internal file systems,
    // whose dentries have no path (their d_dname builds one).
    let path = match (fs_type.as_deref(), ino) {
        (Some("pipefs"), Some(n)) => Some(format!("pipe:[{n}]")),
        (Some("sockfs"), Some(n)) => Some(format!("socket:[{n}]")),
        (Some("anon_inodefs"), _) => fo
            .ptr("f_path.dentry")
            .ok()
            .and_then(|d| r.object("dentry", d).ptr("d_name.name").ok())
            .and_then(|n| r.mem.read_cstr(n, 256).ok())
            .map(|n| format!("anon_inode:{}", String::from_utf8_lossy(&n))),
        _ => file_path(r, file),
    };
    OpenFd {
        fd,
        file,
        path,
        fs_type,
        ino,
        pos: fo.int("f_pos").ok().map(|p| p as u64),
        flags: fo.uint("f_flags").ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::under;

    #[test]
    fn under_is_component_wise() {
        assert!(under("/run/hang/journal.log", "/run/hang"));
        assert!(under("/run/hang/journal.log", "/run/hang/"));
        assert!(under("/run/hang", "/run/hang"));
        assert!(!under("/run/hangar/x", "/run/hang"));
        assert!(under("/anything", "/"));
        assert!(!under("pipe:[12]", "/"));
    }
}
