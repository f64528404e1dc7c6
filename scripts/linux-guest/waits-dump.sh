# Sourced by the waits guest's copy of the recipe's make-hang-dumps.sh in
# place of its waiting and dumping (scripts/linux-guest.sh): W, V, VMLINUX,
# ts and el are the recipe's. The waits are forever; the dump is taken once
# they are older than hangscope's unexplained-wait threshold (60 s), so the
# no-owner waits reach that finding.
DOM=hangwaits
until grep -q WAITS-ESTABLISHED run/console.log 2>/dev/null; do sleep 0.5; done
echo "boot-to-waits: $(el $t)s"
sleep "${WAITS_SETTLE:-66}"
t=$(ts); $V dump $DOM $W/dumps/waits.elf --memory-only >/dev/null; echo "dump ELF: $(el $t)s"
t=$(ts); $V dump $DOM $W/dumps/waits.kdump-zlib --memory-only --format kdump-zlib >/dev/null; echo "dump kdump-zlib: $(el $t)s"
$V destroy $DOM
venv/bin/python3 -m drgn -q -c dumps/waits.elf -s $VMLINUX -s src/waitdemo.ko ./waits_truth.py peers/waits-elf.json
venv/bin/python3 -m drgn -q -c dumps/waits.kdump-zlib --architecture x86_64 -s $VMLINUX -s src/waitdemo.ko ./waits_truth.py peers/waits-kdump.json
cp run/console.log peers/waits-console.log
