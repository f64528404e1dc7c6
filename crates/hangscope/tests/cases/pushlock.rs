//! Issue 15, must-show 2 (push locks): `analyze` on the lab's push-lock
//! pile-up on 7 SP1 (wait blocks read by name), 8.1, 1607, 19041 and 11
//! (no `_EX_PUSH_LOCK_WAIT_BLOCK`: the newest waiter from the lock word, the
//! others and the owner from their stacks).

use hangscope_lab::format::Format;

use crate::util::{self, run};

/// On each build: STUCK, exit 3; the chain starts at the truth's push lock
/// (kind `push_lock`, named by its container, the owner marked inferred in
/// text, JSON step name and graph edge label, and the HTML edge class),
/// runs to the owner the truth names, and every waiter of both locks is
/// blocked.
#[test]
fn issue_15_push_lock_pile_up_is_stuck_behind_the_inferred_owner() {
    let mut problems = Vec::new();
    for (build, seed) in [
        ("win7sp1", 181),
        ("win2012r2", 182),
        ("win2016", 183),
        ("win10-19041", 184),
        ("win11", 185),
    ] {
        let label = format!("[push-lock {build} elf]");
        let (image, truth) = util::build(&util::scenario("push-lock"), build, seed, 64 << 20);
        let dir = tempfile::tempdir().unwrap();
        let dump = util::write(&image, Format::Elf, dir.path(), "push-lock");
        let d = dump.to_str().unwrap();
        let lock = truth
            .push_locks
            .iter()
            .find(|l| l.name == "as-lock")
            .expect("as-lock in the truth");
        let p = &mut problems;
        let r = run(["analyze", d]);
        r.expect(3);
        let want = format!(
            "EX_PUSH_LOCK {:016x} (_EPROCESS.AddressCreationLock of explorer.exe (pid 1800); owner inferred from stacks",
            lock.address
        );
        let want = format!("{}`{}", &want[..21], &want[21..]);
        if !r.stdout.contains(&want) || !r.stdout.contains("1 owner(s) inferred from stacks") {
            p.push(format!("{label} text lacks {want:?}:\n{}", r.stdout));
        }
        let r = run(["--json", "analyze", d]);
        r.expect(3);
        let v = r.json();
        util::eq(
            p,
            &format!("{label} overall"),
            "stuck",
            v["overall"].as_str().unwrap_or(""),
        );
        let f = &v["findings"][0];
        let step = &f["chain"][0];
        util::eq(
            p,
            &format!("{label} first step kind"),
            "push_lock",
            util::s(step, "kind"),
        );
        util::eq(
            p,
            &format!("{label} first step lock"),
            lock.address,
            util::a(step, "address"),
        );
        util::eq(
            p,
            &format!("{label} final owner"),
            lock.owner,
            util::addr(&f["final_owner"]),
        );
        let mut want: Vec<u64> = truth
            .push_locks
            .iter()
            .flat_map(|l| l.waiters.iter().map(|w| w.thread))
            .collect();
        want.sort_unstable();
        let mut got: Vec<u64> = util::arr(f, "threads")
            .iter()
            .map(|t| util::a(t, "address"))
            .collect();
        got.sort_unstable();
        util::eq(p, &format!("{label} blocked threads"), want, got);
        let inferred = util::arr(&v["graph"], "edges").iter().any(|e| {
            e["kind"] == "owned_by"
                && e["label"] == "inferred"
                && util::s(e, "from") == format!("r:{:#x}", lock.address)
        });
        if !inferred {
            p.push(format!(
                "{label} no inferred owned_by edge from the lock: {}",
                v["graph"]
            ));
        }
        let html = dir.path().join("push-lock.html");
        run(["analyze", d, "--html", html.to_str().unwrap()]).expect(3);
        let page = std::fs::read_to_string(&html).expect("HTML report");
        if !page.contains("edge owned_by") || !page.contains(" inferred\"") {
            p.push(format!("{label} HTML draws no inferred owner edge"));
        }
    }
    util::report("push-lock", problems);
}
