# Sourced by the flood guest's copy of the recipe's make-hang-dumps.sh in
# place of its waiting and dumping (scripts/linux-guest.sh): W, V, VMLINUX,
# ts and el are the recipe's. Waits for the flood, then dumps only a state
# drgn confirms (flood_truth.py --check: the files are there, readers own the
# directory's i_rwsem, it has waiters, a CPU runs a reader inside the walk);
# otherwise resumes the guest and tries again.
DOM=hangflood
until grep -q FLOOD-ESTABLISHED run/console.log 2>/dev/null; do sleep 0.5; done
echo "boot-to-flood: $(el $t)s"
sleep "${FLOOD_SETTLE:-3}"
ok=
for try in $(seq 1 "${FLOOD_TRIES:-10}"); do
  $V suspend $DOM >/dev/null
  rm -f dumps/flood.*
  t=$(ts); $V dump $DOM $W/dumps/flood.elf --memory-only >/dev/null; echo "try $try: dump ELF: $(el $t)s"
  if venv/bin/drgn -q -c dumps/flood.elf -s $VMLINUX ./flood_truth.py /run/flood peers/flood-elf.json --check; then
    # The same paused state, in the second format.
    t=$(ts); $V dump $DOM $W/dumps/flood.kdump-zlib --memory-only --format kdump-zlib >/dev/null
    echo "dump kdump-zlib: $(el $t)s"
    ok=$try; break
  fi
  $V resume $DOM >/dev/null; sleep 1.3
done
$V destroy $DOM
[ -n "$ok" ] || { echo "flood: the expected state was not seen in ${FLOOD_TRIES:-10} dumps" >&2; exit 1; }
echo "flood: expected state on try $ok"
echo "$ok" > peers/flood-tries
venv/bin/drgn -q -c dumps/flood.kdump-zlib --architecture x86_64 -s $VMLINUX ./flood_truth.py /run/flood peers/flood-kdump.json
cp run/console.log peers/flood-console.log
